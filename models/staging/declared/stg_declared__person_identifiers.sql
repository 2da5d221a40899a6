-- Ids the declared systems carry (national, customer, member numbers), normalized as their
-- kind says: trimmed, lower case, digits only or letters and digits only.

with

identifiers as (

    select * from {{ source('declared', 'person_identifiers') }}

),

kinds as (

    select * from {{ ref('stg_declared__identifier_kinds') }}

),

normalized as (

    select
        identifiers.source,
        identifiers.source_record_id,
        identifiers.identifier_kind,
        case kinds.normalization
            when 'lower' then lower(trim(identifiers.identifier_value))
            when 'digits' then {{ regexp_replace_all('identifiers.identifier_value', '[^0-9]') }}
            when 'alnum' then upper({{ regexp_replace_all('identifiers.identifier_value', '[^0-9A-Za-z]') }})
            else trim(identifiers.identifier_value)
        end as identifier_value,
        identifiers.loaded_at
    from identifiers
    left join kinds on identifiers.identifier_kind = kinds.identifier_kind

)

select distinct
    source || ':' || source_record_id as record_key,
    source,
    source_record_id,
    identifier_kind,
    identifier_value,
    loaded_at
from normalized
where identifier_value <> '' and identifier_value is not null
