-- Links between records, each with its cause: a shared identifier that may merge (star edges
-- to the value's first record keep this linear in the number of records), or a probabilistic
-- match at or above var `cdp_match_threshold`. Disagreeing given names and birth dates weigh
-- against a match in the matcher's learned weights (households share surname, address and
-- landline), instead of vetoing pairs whose names merely carry a typo.

with

identifiers as (

    select * from {{ ref('int_identifiers') }}

),

quality as (

    select * from {{ ref('int_identifier_quality') }}

),

merging as (

    select
        identifiers.record_key,
        identifiers.identifier_kind,
        identifiers.identifier_value
    from identifiers
    inner join quality
        on
            identifiers.identifier_kind = quality.identifier_kind
            and identifiers.identifier_value = quality.identifier_value
    where quality.can_merge and quality.record_count > 1

),

anchors as (

    select
        identifier_kind,
        identifier_value,
        min(record_key) as anchor_record_key
    from merging
    group by identifier_kind, identifier_value

),

deterministic as (

    select
        merging.record_key as record_key_a,
        anchors.anchor_record_key as record_key_b,
        'identifier' as link_type,
        merging.identifier_kind as link_kind,
        merging.identifier_value as link_value,
        cast(null as {{ dbt.type_float() }}) as match_probability
    from merging
    inner join anchors
        on
            merging.identifier_kind = anchors.identifier_kind
            and merging.identifier_value = anchors.identifier_value
    where merging.record_key <> anchors.anchor_record_key

),

probabilistic as (

    select
        record_key_l as record_key_a,
        record_key_r as record_key_b,
        'match' as link_type,
        'probabilistic' as link_kind,
        agreed_fields as link_value,
        match_probability
    from {{ ref('int_identity_matches') }}
    where match_probability >= {{ var('cdp_match_threshold') }}

)

select * from deterministic
union all
select * from probabilistic
