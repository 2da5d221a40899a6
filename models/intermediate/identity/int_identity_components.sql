-- Connected components of the record graph: every record gets the smallest record key it is
-- linked to, directly or through others. A recursive walk that terminates because UNION drops
-- rows already found; components stay small because junk and shared identifiers do not link.

with recursive

records as (

    select record_key from {{ ref('int_identity_records') }}

),

edges as (

    select
        record_key_a as from_key,
        record_key_b as to_key
    from {{ ref('int_identity_edges') }}
    union
    select
        record_key_b as from_key,
        record_key_a as to_key
    from {{ ref('int_identity_edges') }}

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
