{{ config(
    materialized=incremental_materialization(),
    unique_key='record_key',
    incremental_strategy=incremental_strategy_for_target(),
    on_schema_change='append_new_columns',
    post_hook="{{ delete_rows_gone_from(ref('int_identity_records'), 'record_key',
        relation_key='case when ' ~ is_match_candidate('current_rows')
            ~ ' then current_rows.record_key end') }}",
) }}

-- Records the probabilistic matcher compares: everyone with a name, an email, a birth date or
-- a custom id, with comparison keys (folded names, nicknames resolved to the given name, street
-- name and house number apart, email local part without digits and punctuation, phones, the
-- ids of custom kinds). Junk emails and junk or shared phones (a household's landline) are not
-- compared: a shared value is no evidence of one person. Which keys the
-- matcher compares and blocks on follows from which of them the data fills.
-- Incremental: a run keys only the records whose inputs changed (their fields, the quality of
-- their email and phones, their custom ids, the nickname their first name resolves to), or
-- all of them when the keying SQL changed; folding every record's names was most of the
-- model's time. Records gone, or no longer compared, leave it (the post-hook).

{#- From the inputs to the keys: its text is hashed into each record's fingerprint, so an edit
    of it, or of a macro it calls, keys every record again. -#}
{%- set keys_sql -%}
keyed as (

    select
        inputs.record_key,
        inputs.source,
        inputs.input_fingerprint,
        {{ name_key('coalesce(inputs.nickname_of, inputs.first_name)') }} as first_name_key,
        {{ name_key('inputs.last_name') }} as last_name_key,
        cast(inputs.birth_date as {{ dbt.type_string() }}) as birth_date,
        inputs.postal_code,
        {{ name_key('inputs.city') }} as city_key,
        {{ name_key('inputs.street') }} as street_key,
        -- the first number in the street line: "Hauptstr. 12a", "12 Wallaby Place"
        lower({{ regexp_extract('inputs.street', '[0-9]+[A-Za-z]?') }}) as house_number,
        -- letters and digits: anna.mueller and anna_mueller are one habit, annamueller77 and
        -- annamueller12 two people
        nullif(
            {{ regexp_replace_all("lower(split_part(inputs.usable_email, '@', 1))", '[^a-z0-9]') }},
            ''
        ) as email_local,
        {{ name_key("split_part(inputs.usable_email, '@', 1)") }} as email_local_letters,
        {{ name_key('inputs.first_name') }} as written_first_name_key,
        inputs.usable_phone as phone,
        inputs.usable_mobile_phone as mobile_phone,
        inputs.other_id
    from inputs_to_key as inputs

),

email_judged as (

    -- A local part that only spells the record's own name (anna.mueller, amueller, muellera)
    -- says nothing the names do not: namesakes share it as often as one person does, so counted
    -- as its own evidence it merged namesakes. Digits or anything else in it stay evidence, and
    -- so does the local part of a record without a whole name (null names spell nothing).
    select
        *,
        {{ regex_matches('email_local', '[a-z]+') }}
        and coalesce(email_local_letters in (
            first_name_key || last_name_key,
            last_name_key || first_name_key,
            written_first_name_key || last_name_key,
            last_name_key || written_first_name_key,
            substr(first_name_key, 1, 1) || last_name_key,
            substr(written_first_name_key, 1, 1) || last_name_key,
            first_name_key || substr(last_name_key, 1, 1),
            last_name_key || substr(first_name_key, 1, 1),
            first_name_key,
            last_name_key
        )
        -- the name with a typo in one of its fields (steffen.jessel@ for "Stefefn Jessel"):
        -- counted as evidence of its own, it linked two namesakes with the same email habit
        or email_local_letters like substr(first_name_key, 1, 1) || '%' || last_name_key
        or email_local_letters like first_name_key || substr(last_name_key, 1, 1) || '%', false)
            as email_local_spells_name
    from keyed

)

select
    record_key,
    source,
    nullif(first_name_key, '') as first_name_key,
    nullif(last_name_key, '') as last_name_key,
    -- the whole name in one key: "Alexander van Lucel" split differently by two systems
    nullif(first_name_key || last_name_key, '') as full_name_key,
    -- the name an email's local part spells (letters only: flavio.mayrhofer77 -> flaviomayrhofer),
    -- compared with the other record's whole name where one record has no name at all (a
    -- newsletter sign-up): the name its email was made from still links it
    case when length(email_local_letters) >= 5 then email_local_letters end as email_name_key,
    birth_date,
    postal_code,
    nullif(city_key, '') as city_key,
    nullif(street_key, '') as street_key,
    nullif(house_number, '') as house_number,
    case when not email_local_spells_name then email_local end as email_local,
    phone,
    mobile_phone,
    other_id,
    -- what the keys were made from (model notes)
    input_fingerprint
from email_judged
{%- endset %}

with

records as (

    select
        records.*,
        case when not coalesce(quality.is_blocklisted, false) then records.email end
            as usable_email,
        case
            when not coalesce(phone_quality.is_blocklisted or phone_quality.is_shared, false)
                then records.phone
        end as usable_phone,
        case
            when not coalesce(mobile_quality.is_blocklisted or mobile_quality.is_shared, false)
                then records.mobile_phone
        end as usable_mobile_phone
    from {{ ref('int_identity_records') }} as records
    left join {{ ref('int_identifier_quality') }} as quality
        on quality.identifier_kind = 'email' and records.email = quality.identifier_value
    left join {{ ref('int_identifier_quality') }} as phone_quality
        on phone_quality.identifier_kind = 'phone' and records.phone = phone_quality.identifier_value
    left join {{ ref('int_identifier_quality') }} as mobile_quality
        on
            mobile_quality.identifier_kind = 'phone'
            and records.mobile_phone = mobile_quality.identifier_value
    -- every source: a web identify with a name and an email is a record like a sign-up
    where {{ is_match_candidate('records') }}

),

other_ids as (

    -- Ids of kinds a declared source defines (national, customer numbers): evidence, compared
    -- as text ("kind:value"); the smallest when a record has several.
    select
        identifiers.record_key,
        min(identifiers.identifier_kind || ':' || identifiers.identifier_value) as other_id
    from {{ ref('int_identifiers') }} as identifiers
    inner join {{ ref('stg_declared__identifier_kinds') }} as kinds
        on identifiers.identifier_kind = kinds.identifier_kind
    group by identifiers.record_key

),

nicknames as (

    select
        lower(nickname) as nickname,
        min(lower(given_name)) as given_name
    from {{ ref('nicknames') }}
    group by lower(nickname)

),

inputs as (

    select
        records.record_key,
        records.source,
        records.first_name,
        records.last_name,
        records.birth_date,
        records.postal_code,
        records.city,
        records.street,
        records.usable_email,
        records.usable_phone,
        records.usable_mobile_phone,
        nicknames.given_name as nickname_of,
        other_ids.other_id,
        {{ fingerprint([
            "'" ~ local_md5(keys_sql) ~ "'",
            'records.source', 'records.first_name', 'records.last_name', 'records.birth_date',
            'records.postal_code', 'records.city', 'records.street', 'records.usable_email',
            'records.usable_phone', 'records.usable_mobile_phone', 'nicknames.given_name',
            'other_ids.other_id',
        ]) }} as input_fingerprint
    from records
    left join nicknames
        on lower(split_part(trim(records.first_name), ' ', 1)) = nicknames.nickname
    left join other_ids on records.record_key = other_ids.record_key

),

-- the records to key: all on a full build, else those whose fingerprint is new
inputs_to_key as (

    select inputs.*
    from inputs
    {%- if is_incremental() %}
    left join (
        select
            record_key,
            {{ column_or_null(this, 'input_fingerprint', dbt.type_string()) }} as input_fingerprint
        from {{ this }}
    ) as stored on inputs.record_key = stored.record_key
    where
        stored.input_fingerprint is null
        or stored.input_fingerprint <> inputs.input_fingerprint
    {%- endif %}

),

{{ keys_sql }}
