with

source as (

    select * from {{ source('crm', 'contacts') }}

),

with_country as (

    -- Computed once: phone normalization needs it for national numbers.
    select
        *,
        {{ normalize_country('country') }} as country_code
    from source

),

renamed as (

    select
        contact_id,
        account_id,
        salutation,
        {{ normalize_name('first_name') }} as first_name,
        {{ normalize_name('last_name') }} as last_name,
        {{ normalize_email('email') }} as email,
        {{ normalize_phone('phone', 'country_code') }} as phone,
        {{ normalize_phone('mobile', 'country_code') }} as mobile_phone,
        trim(street) as street,
        trim(postal_code) as postal_code,
        trim(city) as city,
        country_code,
        cast(birth_date as date) as birth_date,
        job_title,
        owner as owner_name,
        lead_status,
        lead_source,
        {{ local_to_utc('created_at') }} as created_at,
        {{ local_to_utc('updated_at') }} as updated_at,
        _loaded_at as loaded_at
    from with_country

),

latest as (

    {{ latest_per_key('renamed', 'contact_id', [
        'updated_at desc nulls last', 'loaded_at desc', 'created_at desc nulls last',
        'birth_date desc nulls last'
    ]) }}

)

select * from latest
