{{ config(meta={'dagster': {'ref': {'name': 'int_identity_edges'}}}) }}
-- No two records may be linked by a blocklisted or shared identifier value.
select
    edges.record_key_a,
    edges.record_key_b,
    edges.link_kind,
    edges.link_value
from {{ ref('int_identity_edges') }} as edges
inner join {{ ref('int_identifier_quality') }} as quality
    on
        edges.link_kind = quality.identifier_kind
        and edges.link_value = quality.identifier_value
where quality.is_blocklisted or quality.is_shared
