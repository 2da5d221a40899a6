-- Each identifier a record holds, with what the identity graph may do with its value (the
-- quality flags of int_identifier_quality): the one place the two are joined.

{{ config(materialized='view') }}

with

identifiers as (

    select * from {{ ref('int_identifiers') }}

),

quality as (

    select * from {{ ref('int_identifier_quality') }}

)

select
    identifiers.record_key,
    identifiers.identifier_kind,
    identifiers.identifier_value,
    quality.record_count,
    quality.priority,
    quality.max_per_profile,
    quality.is_merge_key,
    quality.is_blocklisted,
    quality.is_shared,
    quality.can_merge
from identifiers
inner join quality
    on
        identifiers.identifier_kind = quality.identifier_kind
        and identifiers.identifier_value = quality.identifier_value
