{{ config(
    materialized=incremental_materialization(),
    unique_key='customer_id',
    incremental_strategy=incremental_strategy_for_target(),
    post_hook="{{ delete_rows_gone_from(
        source('shop', 'customers'), 'customer_id', 'trim(current_rows.customer_id)'
    ) }}",
) }}

-- Incremental: a run re-stages only the accounts with a version loaded since the last run, but
-- every version of each of them, since dating the marketing choice reads the account's history.

with

{% if is_incremental() -%}
changed_accounts as (

    select distinct trim(customer_id) as customer_id
    from {{ source('shop', 'customers') }}
    {{ loaded_since_last_run() }}

),
{%- endif %}

source as (

    select * from {{ source('shop', 'customers') }}
    {%- if is_incremental() %}
        where trim(customer_id) in (select customer_id from changed_accounts)
    {%- endif %}

),

with_country as (

    -- Computed once: phone normalization needs it for national numbers.
    select
        *,
        {{ normalize_country(json_field('billing_address', 'country')) }} as country_code
    from source

),

renamed as (

    select
        trim(customer_id) as customer_id,
        {{ normalize_email('email') }} as email,
        {{ normalize_name('first_name') }} as first_name,
        {{ normalize_name('last_name') }} as last_name,
        {{ normalize_phone('phone', 'country_code') }} as phone,
        trim({{ json_field('billing_address', 'street') }}) as street,
        trim({{ json_field('billing_address', 'zip') }}) as postal_code,
        trim({{ json_field('billing_address', 'city') }}) as city,
        country_code,
        cast(birthday as date) as birth_date,
        {{ to_boolean('accepts_marketing') }} as accepts_marketing,
        {{ iso_to_utc('created_at') }} as created_at,
        {{ iso_to_utc('updated_at') }} as updated_at,
        _loaded_at as loaded_at
    from with_country

),

latest as (

    {{ latest_per_key('renamed', 'customer_id', [
        'updated_at desc nulls last', 'loaded_at desc', 'created_at desc nulls last',
        'birth_date desc nulls last', 'accepts_marketing desc nulls last'
    ]) }}

),

last_other_choice as (

    -- The newest version whose marketing choice differs from the account's choice now.
    select
        versions.customer_id,
        max(versions.updated_at) as changed_after
    from renamed as versions
    inner join latest on versions.customer_id = latest.customer_id
    where versions.accepts_marketing <> latest.accepts_marketing
    group by versions.customer_id

),

marketing_choice as (

    -- When the choice held now was made: the first version carrying it after the last that
    -- did not. An update of something else (an address) does not restate it; with no change
    -- on record it dates from the account's creation.
    select
        latest.customer_id,
        case
            when last_other_choice.changed_after is null
                then coalesce(latest.created_at, latest.updated_at)
            else min(versions.updated_at)
        end as accepts_marketing_stated_at
    from latest
    left join last_other_choice on latest.customer_id = last_other_choice.customer_id
    left join renamed as versions
        on
            latest.customer_id = versions.customer_id
            and latest.accepts_marketing = versions.accepts_marketing
            and last_other_choice.changed_after < versions.updated_at
    group by
        latest.customer_id,
        latest.created_at,
        latest.updated_at,
        last_other_choice.changed_after

)

select
    latest.*,
    marketing_choice.accepts_marketing_stated_at
from latest
inner join marketing_choice on latest.customer_id = marketing_choice.customer_id
