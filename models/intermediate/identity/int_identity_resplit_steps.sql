{{ config(materialized='table') }}

-- What int_identity_components needs to split once more the parts of int_identity_split_parts
-- that still hold more values of a lower-priority merge-key kind than a profile may (two
-- namesakes' shop accounts seeded two parts, and both their CRM contacts joined one): their
-- records, a seed per value of the highest-priority kind still over its limit, and the links
-- inside each part. The shape of int_identity_split_steps, with the part beside the component.
-- A table of its own, so that Spark plans the second walk over a table (with these steps
-- inlined into each of its rounds it did not finish).

with

parts as (

    select
        record_key,
        component_key,
        part_key
    from {{ ref('int_identity_split_parts') }}

),

steps as (

    select
        from_key,
        to_key,
        strength
    from {{ ref('int_identity_split_steps') }}
    where step_type = 'step'

),

limited_values as (

    {{ limited_merge_values() }}

),

part_over_limit as (

    {{ kinds_over_limit('parts', 'part_key', 'limited_values') }}

),

resplit_records as (

    select
        parts.record_key,
        parts.component_key,
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
        from_records.component_key,
        from_records.part_key,
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
    group by
        from_records.component_key, from_records.part_key, both_ways.from_key, both_ways.to_key

)

select
    'record' as step_type,
    component_key,
    part_key,
    record_key as from_key,
    cast(null as {{ dbt.type_string() }}) as to_key,
    cast(null as {{ dbt.type_float() }}) as strength,
    cast(null as {{ dbt.type_string() }}) as seed
from resplit_records
union all
select
    'seed' as step_type,
    resplit_records.component_key,
    resplit_records.part_key,
    reseeds.record_key as from_key,
    cast(null as {{ dbt.type_string() }}) as to_key,
    cast(null as {{ dbt.type_float() }}) as strength,
    reseeds.seed
from reseeds
inner join resplit_records on reseeds.record_key = resplit_records.record_key
union all
select
    'step' as step_type,
    component_key,
    part_key,
    from_key,
    to_key,
    strength,
    cast(null as {{ dbt.type_string() }}) as seed
from resteps
