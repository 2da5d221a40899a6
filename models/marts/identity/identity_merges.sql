{{ config(
    materialized=incremental_materialization(),
    unique_key='merge_event_id',
    incremental_strategy=incremental_strategy_for_target(),
) }}

-- Every merge and split of customer profiles, with when, which ids, and what caused it. A merge:
-- records of an earlier profile now sit in another profile and the earlier id is gone. A split:
-- records left a profile that still exists.

with

assignments as (

    select * from {{ ref('int_profile_assignments') }}

),

latest_assignment_run as (

    select max(assigned_at) as assigned_at from assignments

),

-- records reassigned by the latest assignment run (the others keep their earlier assigned_at)
reassigned as (

    select assignments.*
    from assignments
    inner join latest_assignment_run
        on assignments.assigned_at = latest_assignment_run.assigned_at

),

moved as (

    select
        prior_profile_id,
        profile_id,
        count(*) as records_moved,
        max(assigned_at) as happened_at
    from reassigned
    where prior_profile_id is not null and prior_profile_id <> profile_id
    group by prior_profile_id, profile_id

),

current_ids as (

    select distinct profile_id from assignments

),

events as (

    select
        case when current_ids.profile_id is null then 'merge' else 'split' end as event_type,
        moved.profile_id,
        moved.prior_profile_id as other_profile_id,
        moved.records_moved,
        moved.happened_at,
        moved.prior_profile_id || '>' || moved.profile_id || '@'
        || cast(moved.happened_at as {{ dbt.type_string() }}) as event_key
    from moved
    left join current_ids on moved.prior_profile_id = current_ids.profile_id

),

-- Both directions as rows, so the lookup below is an equi-join (an OR of two conditions made
-- it a nested loop: 109 s at 10M source records).
edges_both_ways as (

    select
        record_key_a as record_key_from,
        record_key_b as record_key_to,
        link_type,
        link_kind,
        link_value,
        match_probability
    from {{ ref('int_identity_edges') }}
    union all
    select
        record_key_b as record_key_from,
        record_key_a as record_key_to,
        link_type,
        link_kind,
        link_value,
        match_probability
    from {{ ref('int_identity_edges') }}

),

linking_edges as (

    select
        events.profile_id,
        events.other_profile_id,
        case
            when edges.link_type = 'identifier'
                then edges.link_kind || ' ' || edges.link_value
            when edges.link_type = 'decision'
                then 'manual merge (decision ' || edges.link_value || ')'
            else
                'match p=' || cast(round(cast(edges.match_probability as numeric), 4) as {{ dbt.type_string() }})
                || ' on ' || edges.link_value
        end as cause,
        case when edges.link_type = 'decision' then 0 else coalesce(rules.priority, 99) end
            as priority
    from events
    inner join assignments as a on events.profile_id = a.profile_id
    inner join assignments as b on events.profile_id = b.profile_id
    inner join edges_both_ways as edges
        on a.record_key = edges.record_key_from and b.record_key = edges.record_key_to
    left join {{ ref('identity_identifier_rules') }} as rules
        on edges.link_kind = rules.identifier_kind
    where
        events.event_type = 'merge'
        and a.prior_profile_id = events.other_profile_id
        and coalesce(b.prior_profile_id, '') <> events.other_profile_id

),

-- The strongest link (identifier priority from identity_identifier_rules, matches last).
causes as (

    select
        profile_id,
        other_profile_id,
        cause
    from (
        select
            *,
            row_number() over (
                partition by profile_id, other_profile_id order by priority asc, cause asc
            ) as strength_rank
        from linking_edges
    ) as ranked
    where strength_rank = 1

)

select
    {{ dbt.hash("events.event_key") }} as merge_event_id,
    events.event_type,
    events.profile_id,
    events.other_profile_id,
    events.records_moved,
    coalesce(
        causes.cause,
        case when events.event_type = 'split' then 'records no longer linked' else 'new link' end
    ) as cause,
    events.happened_at
from events
left join causes
    on events.profile_id = causes.profile_id and events.other_profile_id = causes.other_profile_id
