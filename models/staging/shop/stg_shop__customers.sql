with

source as (

    select * from {{ source('shop', 'customers') }}

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

)

select * from latest
