{{ config(
    materialized=incremental_materialization(),
    unique_key='record_key',
    incremental_strategy=incremental_strategy_for_target(),
    post_hook="{{ delete_rows_gone_from(ref('int_linked_components'), 'record_key') }}",
) }}

-- Guards that decide: a linked component (int_linked_components) holding more values of a
-- merge-key kind than a profile may (identifier rules' max_per_profile, e.g. two CRM contact
-- ids) is split, see `guarded`. Components within the limits pass unchanged.
-- Incremental runs guard only the linked components holding a record that is new, or whose
-- fingerprint or linked component changed (a changed membership changes the fingerprint of a
-- record at the changed link). A model of its own so that Spark plans the chains of the split
-- over a table, not over the rounds that found the components.

with

linked as (

    select
        record_key,
        component_key,
        graph_fingerprint
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

-- as of the last run (none on a full build: every component is guarded)
stored as (

    {% if is_incremental() %}
        select
            record_key,
            linked_component_key,
            graph_fingerprint
        from {{ this }}
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as record_key,
            cast(null as {{ dbt.type_string() }}) as linked_component_key,
            cast(null as {{ dbt.type_string() }}) as graph_fingerprint
        where false
    {% endif %}

),

walked_components as (

    select distinct linked.component_key
    from linked
    left join stored on linked.record_key = stored.record_key
    where
        stored.record_key is null
        or linked.component_key <> stored.linked_component_key
        or linked.graph_fingerprint <> stored.graph_fingerprint

),

components as (

    select
        linked.record_key,
        linked.component_key,
        linked.graph_fingerprint
    from linked
    inner join walked_components on linked.component_key = walked_components.component_key

),

-- a link's records are in one linked component, so its first record decides
walked_edges as (

    select edges.*
    from edges
    inner join components on edges.record_key_a = components.record_key

),

limited_values as (

    -- values of merge-key kinds a profile may hold a limited number of
    select
        record_key,
        identifier_kind,
        identifier_value,
        max_per_profile,
        priority
    from {{ ref('int_identifiers_judged') }}
    where can_merge and max_per_profile is not null

),

decided_components as (

    -- a person merged these by hand: their decision stands over the limits
    select distinct components.component_key
    from components
    inner join walked_edges on components.record_key = walked_edges.record_key_a
    where walked_edges.link_type = 'decision'

),

over_limit as (

    select
        components.component_key,
        limited.identifier_kind,
        row_number() over (
            partition by components.component_key
            order by min(limited.priority), limited.identifier_kind
        ) as kind_rank
    from components
    inner join limited_values as limited on components.record_key = limited.record_key
    where components.component_key not in (select d.component_key from decided_components as d)
    group by components.component_key, limited.identifier_kind
    having count(distinct limited.identifier_value) > max(limited.max_per_profile)

),

split_records as (

    select
        components.record_key,
        components.component_key,
        over_limit.identifier_kind as split_kind
    from components
    inner join over_limit on components.component_key = over_limit.component_key
    where over_limit.kind_rank = 1

),

seeds as (

    -- each value of the highest-priority kind over its limit seeds one part
    select distinct
        split_records.record_key,
        limited.identifier_value as seed
    from split_records
    inner join limited_values as limited
        on
            split_records.record_key = limited.record_key
            and split_records.split_kind = limited.identifier_kind

),

steps as (

    -- links inside split components, never into a seed's record (it holds its own seed), and
    -- each record to itself, so one join per round keeps what was reached
    select
        walked_edges.record_key_a as from_key,
        walked_edges.record_key_b as to_key,
        walked_edges.strength
    from walked_edges
    inner join split_records on walked_edges.record_key_a = split_records.record_key
    where walked_edges.record_key_b not in (select seeds.record_key from seeds)
    union all
    select
        walked_edges.record_key_b as from_key,
        walked_edges.record_key_a as to_key,
        walked_edges.strength
    from walked_edges
    inner join split_records on walked_edges.record_key_b = split_records.record_key
    where walked_edges.record_key_a not in (select seeds.record_key from seeds)
    union all
    select
        record_key as from_key,
        record_key as to_key,
        10.0 as strength
    from split_records

),

{{ strongest_chains('seeds', 'steps') }},

nearest_seed as (

    select
        record_key,
        seed
    from (
        select
            record_key,
            seed,
            row_number() over (
                partition by record_key order by strength desc, seed asc
            ) as seed_rank
        from chains
    ) as ranked
    where seed_rank = 1

),

parts as (

    -- a record no seed reaches stands alone
    select
        split_records.record_key,
        min(split_records.record_key) over (
            partition by
                split_records.component_key,
                nearest_seed.seed is null,
                coalesce(nearest_seed.seed, split_records.record_key)
        ) as part_key
    from split_records
    left join nearest_seed on split_records.record_key = nearest_seed.record_key

),

guarded as (

    select
        components.record_key,
        components.component_key as linked_component_key,
        coalesce(parts.part_key, components.component_key) as component_key,
        components.graph_fingerprint
    from components
    left join parts on components.record_key = parts.record_key

)

select
    guarded.record_key,
    guarded.component_key,
    count(*) over (partition by guarded.component_key) as component_size,
    guarded.linked_component_key,
    guarded.graph_fingerprint,
    {{ dbt.current_timestamp() }} as computed_at
from guarded
