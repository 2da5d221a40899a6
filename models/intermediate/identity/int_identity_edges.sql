-- Links between records, each with its cause: a shared identifier that may merge (star edges
-- to the value's first record keep this linear in the number of records), or a probabilistic
-- match at or above var `cdp_match_threshold`. Disagreeing given names and birth dates weigh
-- against a match in the matcher's learned weights (households share surname, address and
-- landline), instead of vetoing pairs whose names merely carry a typo.

with

identifiers as (

    select * from {{ ref('int_identifiers_judged') }}

),

decisions as (

    select * from {{ ref('stg_identity__decisions') }}

),

detached as (

    -- Records a person took out of their profile: none of their links count.
    select record_key_a as record_key from decisions
    where action = 'detach'

),

kept_apart as (

    select
        record_key_a,
        record_key_b
    from decisions
    where action = 'keep_apart'

),

merging as (

    select
        record_key,
        identifier_kind,
        identifier_value
    from identifiers
    where
        can_merge
        and record_count > 1
        and record_key not in (select detached.record_key from detached)

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

),

manual as (

    select
        record_key_a,
        record_key_b,
        'decision' as link_type,
        'manual_merge' as link_kind,
        decision_id as link_value,
        cast(null as {{ dbt.type_float() }}) as match_probability
    from decisions
    where action = 'merge'

),

automatic as (

    select * from deterministic
    union all
    select * from probabilistic

),

strong_ids as (

    -- Values of merge-key kinds a profile may hold one of (max_per_profile 1, e.g. a CRM
    -- contact id): two records holding different ones are two people.
    select
        record_key,
        identifier_kind,
        identifier_value
    from identifiers
    where is_merge_key and max_per_profile = 1

),

link_ids as (

    -- the strong ids on either end of each link (two joins on the record: a self-join of the
    -- ids by kind first is what PostgreSQL's planner chose, 240M rows at 10k people)
    select
        automatic.record_key_a,
        automatic.record_key_b,
        ids.identifier_kind,
        ids.identifier_value,
        'a' as link_end
    from automatic
    inner join strong_ids as ids on automatic.record_key_a = ids.record_key
    union all
    select
        automatic.record_key_a,
        automatic.record_key_b,
        ids.identifier_kind,
        ids.identifier_value,
        'b' as link_end
    from automatic
    inner join strong_ids as ids on automatic.record_key_b = ids.record_key

),

conflicting as (

    -- Links whose two ends hold different values of such a kind do not merge; a match among
    -- them goes to identity_review_pairs for a human.
    select
        record_key_a,
        record_key_b
    from link_ids
    group by record_key_a, record_key_b, identifier_kind
    having count(distinct identifier_value) > 1 and count(distinct link_end) = 2

),

allowed as (

    -- A person said these two are not one, or took a record out: their automatic links go.
    select automatic.*
    from automatic
    left join kept_apart
        on
            least(automatic.record_key_a, automatic.record_key_b) = kept_apart.record_key_a
            and greatest(automatic.record_key_a, automatic.record_key_b) = kept_apart.record_key_b
    left join conflicting
        on
            automatic.record_key_a = conflicting.record_key_a
            and automatic.record_key_b = conflicting.record_key_b
    where
        kept_apart.record_key_a is null
        and conflicting.record_key_a is null
        and automatic.record_key_a not in (select detached.record_key from detached)
        and automatic.record_key_b not in (select detached.record_key from detached)

)

select * from allowed
union all
select * from manual
