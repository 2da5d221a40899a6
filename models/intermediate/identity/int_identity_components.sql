{{ config(
    materialized=incremental_materialization(),
    unique_key='record_key',
    incremental_strategy=incremental_strategy_for_target(),
    post_hook="{{ delete_rows_gone_from(ref('int_linked_components'), 'record_key') }}",
) }}

-- Guards that decide: a linked component (int_linked_components) holding more values of a
-- merge-key kind than a profile may (identifier rules' max_per_profile, e.g. two CRM contact
-- ids) is split into the parts int_identity_split_parts found, and a part still over a limit
-- once more here, see `guarded`. Components within the limits pass unchanged.
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

-- the first walk's parts
parts as (

    select
        split_parts.record_key,
        split_parts.part_key
    from {{ ref('int_identity_split_parts') }} as split_parts
    inner join walked_components
        on split_parts.component_key = walked_components.component_key

),

steps as (

    select
        split.from_key,
        split.to_key,
        split.strength
    from {{ ref('int_identity_split_steps') }} as split
    inner join walked_components on split.component_key = walked_components.component_key
    where split.step_type = 'step'

),

limited_values as (

    {{ limited_merge_values() }}

),

-- A part can still hold more values of a lower-priority kind than a profile may (two
-- namesakes' shop accounts seeded two parts, and both their CRM contacts joined one): such a
-- part is split once more the same way, by its highest-priority kind over the limit.
part_over_limit as (

    {{ kinds_over_limit('parts', 'part_key', 'limited_values') }}

),

resplit_records as (

    select
        parts.record_key,
        parts.part_key,
        part_over_limit.identifier_kind as split_kind
    from parts
    inner join part_over_limit on parts.part_key = part_over_limit.part_key
    where part_over_limit.kind_rank = 1

),

reseeds as (

    {{ seeds_of_split_kind('resplit_records', 'limited_values') }}

),

both_ways as (

    -- the first walk's steps in both directions (it took none into its own seeds)
    select
        from_key,
        to_key,
        strength
    from steps
    union all
    select
        to_key as from_key,
        from_key as to_key,
        strength
    from steps

),

resteps as (

    -- inside one part, never into a seed's record of this walk but each record to itself
    select
        both_ways.from_key,
        both_ways.to_key,
        max(both_ways.strength) as strength
    from both_ways
    inner join resplit_records as from_records on both_ways.from_key = from_records.record_key
    inner join resplit_records as to_records
        on
            both_ways.to_key = to_records.record_key
            and from_records.part_key = to_records.part_key
    where
        both_ways.from_key = both_ways.to_key
        or both_ways.to_key not in (select reseeds.record_key from reseeds)
    group by both_ways.from_key, both_ways.to_key

),

{{ strongest_chains('reseeds', 'resteps', prefix='re') }},

reparts as (

    {{ parts_by_nearest_seed('resplit_records', 'rechains', 'part_key') }}

),

guarded as (

    select
        components.record_key,
        components.component_key as linked_component_key,
        coalesce(reparts.part_key, parts.part_key, components.component_key) as component_key,
        components.graph_fingerprint
    from components
    left join parts on components.record_key = parts.record_key
    left join reparts on components.record_key = reparts.record_key

)

select
    guarded.record_key,
    guarded.component_key,
    count(*) over (partition by guarded.component_key) as component_size,
    guarded.linked_component_key,
    guarded.graph_fingerprint,
    {{ dbt.current_timestamp() }} as computed_at
from guarded
