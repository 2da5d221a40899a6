-- One row per identifier value: how many records carry it, whether it is junk (blocklist) or
-- shared by several people (seen on more records of one entity source than a person has),
-- and so whether it may link records.

with

identifiers as (

    select * from {{ ref('int_identifiers') }}

),

builtin_rules as (

    select * from {{ ref('identity_identifier_rules') }}

),

rules as (

    select
        identifier_kind,
        priority,
        is_merge_key,
        max_per_profile,
        description
    from builtin_rules
    union all
    select
        identifier_kind,
        priority,
        is_merge_key,
        max_per_profile,
        description
    from {{ ref('stg_declared__identifier_kinds') }} as declared
    where declared.identifier_kind not in (select builtin.identifier_kind from builtin_rules as builtin)

),

per_source as (

    select
        identifiers.identifier_kind,
        identifiers.identifier_value,
        identifiers.source,
        count(distinct identifiers.record_key) as record_count
    from identifiers
    where {{ is_entity_source('identifiers.source') }}
    group by identifiers.identifier_kind, identifiers.identifier_value, identifiers.source

),

sharing as (

    select
        identifier_kind,
        identifier_value,
        max(record_count) as max_records_in_one_source
    from per_source
    group by identifier_kind, identifier_value

),

distinct_values as (

    select distinct
        identifier_kind,
        identifier_value
    from identifiers

),

judged as (

    select
        identifier_kind,
        identifier_value,
        {{ blocklist_reason('identifier_kind', 'identifier_value', ref('identity_blocklist')) }}
            as blocklist_reason
    from distinct_values

),

blocked as (

    select * from judged
    where blocklist_reason is not null

),

values_seen as (

    select
        identifier_kind,
        identifier_value,
        count(distinct record_key) as record_count,
        count(distinct source) as source_count,
        min(observed_at) as first_observed_at
    from identifiers
    group by identifier_kind, identifier_value

)

select
    values_seen.identifier_kind,
    values_seen.identifier_value,
    values_seen.record_count,
    values_seen.source_count,
    values_seen.first_observed_at,
    rules.priority,
    rules.max_per_profile,
    coalesce(rules.is_merge_key, false) as is_merge_key,
    blocked.blocklist_reason,
    blocked.blocklist_reason is not null as is_blocklisted,
    coalesce(sharing.max_records_in_one_source, 0)
    > {{ var('cdp_identity_max_records_per_source') }} as is_shared,
    coalesce(rules.is_merge_key, false)
    and blocked.blocklist_reason is null
    and coalesce(sharing.max_records_in_one_source, 0)
    <= {{ var('cdp_identity_max_records_per_source') }} as can_merge
from values_seen
left join rules on values_seen.identifier_kind = rules.identifier_kind
left join sharing
    on
        values_seen.identifier_kind = sharing.identifier_kind
        and values_seen.identifier_value = sharing.identifier_value
left join blocked
    on
        values_seen.identifier_kind = blocked.identifier_kind
        and values_seen.identifier_value = blocked.identifier_value
