{{ config(materialized='table') }}

-- What int_identity_components needs to split the linked components that hold more values of a
-- merge-key kind than a profile may (max_per_profile): their records, a seed per value of the
-- highest-priority kind over its limit, and the links between their records with how strongly
-- each binds. A table of its own: Spark then walks the chains over a table, not over the plan
-- that found them (24 rounds of it were more than its planner could take). Few rows: only
-- components over a limit have any.

with

linked as (

    select
        record_key,
        component_key
    from {{ ref('int_linked_components') }}

),

kind_priorities as (

    select distinct
        identifier_kind,
        priority
    from {{ ref('int_identifier_quality') }}

),

edges as (

    select
        edges.record_key_a,
        edges.record_key_b,
        edges.link_type,
        -- how strongly the link binds: a person's decision, then identifier links by their
        -- kind's priority, then matches by probability
        case edges.link_type
            when 'decision' then 3.0
            when 'identifier' then 2.0 - 0.001 * coalesce(kinds.priority, 999)
            else edges.match_probability
        end as strength
    from {{ ref('int_identity_edges') }} as edges
    left join kind_priorities as kinds
        on edges.link_type = 'identifier' and edges.link_kind = kinds.identifier_kind

),

limited_values as (

    {{ limited_merge_values() }}

),

decided_components as (

    -- a person merged these by hand: their decision stands over the limits
    select distinct linked.component_key
    from linked
    inner join edges on linked.record_key = edges.record_key_a
    where edges.link_type = 'decision'

),

undecided as (

    select
        record_key,
        component_key
    from linked
    where component_key not in (select d.component_key from decided_components as d)

),

over_limit as (

    {{ kinds_over_limit('undecided', 'component_key', 'limited_values') }}

),

split_records as (

    select
        linked.record_key,
        linked.component_key,
        over_limit.identifier_kind as split_kind
    from linked
    inner join over_limit on linked.component_key = over_limit.component_key
    where over_limit.kind_rank = 1

),

seeds as (

    -- each value of the highest-priority kind over its limit seeds one part
    {{ seeds_of_split_kind('split_records', 'limited_values') }}

),

steps as (

    -- links inside split components, never into a seed's record (it holds its own seed), and
    -- each record to itself, so one join per round keeps what was reached
    select
        edges.record_key_a as from_key,
        edges.record_key_b as to_key,
        edges.strength
    from edges
    inner join split_records on edges.record_key_a = split_records.record_key
    where edges.record_key_b not in (select seeds.record_key from seeds)
    union all
    select
        edges.record_key_b as from_key,
        edges.record_key_a as to_key,
        edges.strength
    from edges
    inner join split_records on edges.record_key_b = split_records.record_key
    where edges.record_key_a not in (select seeds.record_key from seeds)
    union all
    select
        record_key as from_key,
        record_key as to_key,
        10.0 as strength
    from split_records

)

select
    'record' as step_type,
    component_key,
    record_key as from_key,
    cast(null as {{ dbt.type_string() }}) as to_key,
    cast(null as {{ dbt.type_float() }}) as strength,
    cast(null as {{ dbt.type_string() }}) as seed
from split_records
union all
select
    'seed' as step_type,
    split_records.component_key,
    seeds.record_key as from_key,
    cast(null as {{ dbt.type_string() }}) as to_key,
    cast(null as {{ dbt.type_float() }}) as strength,
    seeds.seed
from seeds
inner join split_records on seeds.record_key = split_records.record_key
union all
select
    'step' as step_type,
    split_records.component_key,
    steps.from_key,
    steps.to_key,
    -- two records linked more than once: the strongest link is the step
    max(steps.strength) as strength,
    cast(null as {{ dbt.type_string() }}) as seed
from steps
inner join split_records on steps.from_key = split_records.record_key
group by split_records.component_key, steps.from_key, steps.to_key
