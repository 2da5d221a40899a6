{{ config(
    materialized=incremental_materialization(),
    unique_key='record_key',
    incremental_strategy=incremental_strategy_for_target(),
    post_hook="{{ delete_rows_gone_from(ref('int_linked_components'), 'record_key') }}",
) }}

-- Guards that decide: a linked component (int_linked_components) holding more values of a
-- merge-key kind than a profile may (identifier rules' max_per_profile, e.g. two CRM contact
-- ids) is split into the parts int_identity_split_parts found, and a part still over a limit
-- once more here (int_identity_resplit_steps), see `guarded`. Components within the limits
-- pass unchanged.
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

-- the parts that still hold more values of a kind than a profile may (two namesakes' shop
-- accounts seeded two parts, and both their CRM contacts joined one) are split once more the
-- same way, by their highest-priority kind over the limit
resplit as (

    select resplit.*
    from {{ ref('int_identity_resplit_steps') }} as resplit
    inner join walked_components on resplit.component_key = walked_components.component_key

),

resplit_records as (

    select
        from_key as record_key,
        part_key
    from resplit
    where step_type = 'record'

),

reseeds as (

    select
        from_key as record_key,
        seed
    from resplit
    where step_type = 'seed'

),

resteps as (

    select
        from_key,
        to_key,
        strength
    from resplit
    where step_type = 'step'

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
