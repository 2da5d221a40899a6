-- People from every system declared in YAML, normalized like the built-in systems: names,
-- emails, phones (E.164, national numbers read in the record's or the source's country),
-- countries (any spelling of any ISO 3166 country), dates. Latest version per record.

with

source as (

    select * from {{ source('declared', 'person_records') }}

),

with_country as (

    -- Computed once: phone normalization needs it for national numbers.
    select
        *,
        {{ normalize_country('country') }} as country_code
    from source

),

with_phone_country as (

    select
        *,
        coalesce(country_code, default_country) as phone_country_code,
        {{ normalize_name('full_name') }} as clean_full_name
    from with_country

),

full_name_parts as (

    -- "Family, Given Middle" or "Given Middle Family"
    select
        *,
        case
            when {{ dbt.position("','", 'clean_full_name') }} > 0
                then nullif(trim(split_part(clean_full_name, ',', 2)), '')
            else {{ first_words('clean_full_name') }}
        end as full_name_given_names,
        case
            when {{ dbt.position("','", 'clean_full_name') }} > 0
                then nullif(trim(split_part(clean_full_name, ',', 1)), '')
            else {{ last_word('clean_full_name') }}
        end as full_name_family
    from with_phone_country

),

split_names as (

    -- the first given name is the given name, the others middle names: another system that
    -- keeps one given name compares it with the first
    select
        *,
        split_part(full_name_given_names, ' ', 1) as full_name_given,
        nullif(
            trim(
                substr(
                    full_name_given_names,
                    length(split_part(full_name_given_names, ' ', 1)) + 1
                )
            ),
            ''
        ) as full_name_middle
    from full_name_parts

),

renamed as (

    select
        source,
        source_table,
        source_record_id,
        coalesce({{ normalize_name('given_name') }}, full_name_given) as first_name,
        coalesce(
            {{ normalize_name('middle_name') }},
            case when {{ normalize_name('given_name') }} is null then full_name_middle end
        ) as middle_name,
        coalesce({{ normalize_name('family_name') }}, full_name_family) as last_name,
        {{ normalize_email('email') }} as email,
        {{ normalize_phone('phone', 'phone_country_code') }} as phone,
        {{ normalize_phone('mobile_phone', 'phone_country_code') }} as mobile_phone,
        nullif(trim(street), '') as street,
        nullif(trim(house_number), '') as house_number,
        nullif(trim(address_line_2), '') as address_line_2,
        nullif(trim(postal_code), '') as postal_code,
        nullif(trim(city), '') as city,
        nullif(trim(region), '') as region,
        country_code,
        cast(birth_date as date) as birth_date,
        nullif(lower(trim(gender)), '') as gender,
        nullif(trim(company), '') as company_name,
        cast(created_at as timestamp) as created_at,
        cast(coalesce(updated_at, created_at) as timestamp) as updated_at,
        is_one_record_per_person,
        loaded_at
    from split_names

),

latest as (

    {{ latest_per_key('renamed', 'source, source_record_id', 'updated_at desc nulls last, loaded_at desc') }}

)

select
    source || ':' || source_record_id as record_key,
    *
from latest
