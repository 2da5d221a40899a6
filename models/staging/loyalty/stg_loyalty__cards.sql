with

source as (

    select * from {{ source('loyalty', 'cards') }}

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
        -- Cashiers type card numbers with and without spaces.
        upper({{ regexp_replace_all('card_number', '[^0-9A-Za-z]') }}) as card_number,
        {{ normalize_name('holder_first_name') }} as first_name,
        {{ normalize_name('holder_last_name') }} as last_name,
        {{ normalize_email('email') }} as email,
        {{ normalize_phone('phone', 'country_code') }} as phone,
        {{ parse_german_date('birth_date') }} as birth_date,
        trim(postal_code) as postal_code,
        trim(city) as city,
        country_code,
        home_store_id,
        tier as loyalty_tier,
        {{ local_to_utc('issued_at') }} as issued_at,
        _loaded_at as loaded_at
    from with_country

),

latest as (

    {{ latest_per_key('renamed', 'card_number', [
        'issued_at desc nulls last', 'loaded_at desc', 'birth_date desc nulls last'
    ]) }}

)

select * from latest
