-- Records the probabilistic matcher compares: everyone with a family name or an email, with
-- comparison keys (folded names, nicknames resolved to the given name, email local part without
-- digits and punctuation, phones). Junk emails (blocklist) give no local part to compare.

with

records as (

    select
        records.*,
        case when not coalesce(quality.is_blocklisted, false) then records.email end
            as usable_email
    from {{ ref('int_identity_records') }} as records
    left join {{ ref('int_identifier_quality') }} as quality
        on quality.identifier_kind = 'email' and records.email = quality.identifier_value
    where (records.last_name is not null or records.email is not null) and records.source <> 'web'

),

nicknames as (

    select
        lower(nickname) as nickname,
        min(lower(given_name)) as given_name
    from {{ ref('nicknames') }}
    group by lower(nickname)

),

keyed as (

    select
        records.record_key,
        records.source,
        {{ name_key('coalesce(nicknames.given_name, records.first_name)') }} as first_name_key,
        {{ name_key('records.last_name') }} as last_name_key,
        cast(records.birth_date as {{ dbt.type_string() }}) as birth_date,
        records.postal_code,
        {{ name_key('records.city') }} as city_key,
        {{ name_key('records.street') }} as street_key,
        -- letters only: anna.mueller, anna_mueller and annamueller77 are one person's habit
        nullif({{ regexp_replace_all("split_part(records.usable_email, '@', 1)", '[^a-z]') }}, '')
            as email_local,
        records.phone,
        records.mobile_phone
    from records
    left join nicknames
        on lower(split_part(trim(records.first_name), ' ', 1)) = nicknames.nickname

)

select
    record_key,
    source,
    nullif(first_name_key, '') as first_name_key,
    nullif(last_name_key, '') as last_name_key,
    birth_date,
    postal_code,
    nullif(city_key, '') as city_key,
    nullif(street_key, '') as street_key,
    email_local,
    phone,
    mobile_phone
from keyed
