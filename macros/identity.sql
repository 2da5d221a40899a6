{#- Connected components of a record graph: (record_key, component_key, component_size), the
    component key being the smallest record key linked, directly or through others. -#}
{% macro connected_components(records, edges) -%}
    {{ return(adapter.dispatch('connected_components', 'cdp')(records, edges)) }}
{%- endmacro %}

{% macro default__connected_components(records, edges) -%}
with recursive

records as (

    select record_key from {{ records }}

),

edges as (

    select
        record_key_a as from_key,
        record_key_b as to_key
    from {{ edges }}
    union
    select
        record_key_b as from_key,
        record_key_a as to_key
    from {{ edges }}

),

walk (record_key, reached_key) as (

    select
        record_key,
        record_key as reached_key
    from records
    union
    select
        walk.record_key,
        edges.to_key as reached_key
    from walk
    inner join edges on walk.reached_key = edges.from_key

)

select
    record_key,
    min(reached_key) as component_key,
    count(*) as component_size
from walk
group by record_key
{%- endmacro %}

{% macro spark__connected_components(records, edges, rounds=24) -%}
    {#- Spark's recursive CTEs take UNION ALL only, which never ends on a cycle: propagate the
        smallest key one hop per round instead. `rounds` bounds the component diameter; the test
        assert_components_closed_under_edges fails if a component needed more. -#}
with

neighbours as (

    select record_key as from_key, record_key as to_key from {{ records }}
    union
    select record_key_a, record_key_b from {{ edges }}
    union
    select record_key_b, record_key_a from {{ edges }}

),

labels_0 as (

    select record_key, record_key as component_key from {{ records }}

),
{%- for round in range(1, rounds + 1) %}

labels_{{ round }} as (

    select
        neighbours.from_key as record_key,
        min(previous.component_key) as component_key
    from neighbours
    inner join labels_{{ round - 1 }} as previous on neighbours.to_key = previous.record_key
    group by neighbours.from_key

),
{%- endfor %}

final as (

    select
        record_key,
        component_key,
        count(*) over (partition by component_key) as component_size
    from labels_{{ rounds }}

)

select * from final
{%- endmacro %}
