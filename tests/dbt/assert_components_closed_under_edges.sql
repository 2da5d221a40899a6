-- Both records of every identity edge belong to the same linked component (on Spark, where
-- components come from a bounded number of propagation rounds, this fails if one needed more).

with

edges as (

    select * from {{ ref('int_identity_edges') }}

),

components as (

    select * from {{ ref('int_linked_components') }}

)

select
    edges.record_key_a,
    edges.record_key_b,
    a.component_key as component_a,
    b.component_key as component_b
from edges
inner join components as a on edges.record_key_a = a.record_key
inner join components as b on edges.record_key_b = b.record_key
where a.component_key <> b.component_key
