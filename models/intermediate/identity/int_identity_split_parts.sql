{{ config(materialized='table') }}

-- The first walk of the guard (int_identity_components): each linked component over a limit
-- split into parts, a record joining the seed whose chain to it binds strongest. A table of
-- its own: the second walk then reads parts from a table, not from the plan of 24 rounds that
-- found them (Spark planned both walks as one and did not finish). Few rows: only components
-- over a limit have any.

with

split as (

    select * from {{ ref('int_identity_split_steps') }}

),

split_records as (

    select
        from_key as record_key,
        component_key
    from split
    where step_type = 'record'

),

seeds as (

    select
        from_key as record_key,
        seed
    from split
    where step_type = 'seed'

),

steps as (

    select
        from_key,
        to_key,
        strength
    from split
    where step_type = 'step'

),

{{ strongest_chains('seeds', 'steps') }},

parts as (

    {{ parts_by_nearest_seed('split_records', 'chains', 'component_key') }}

)

select
    parts.record_key,
    split_records.component_key,
    parts.part_key
from parts
inner join split_records on parts.record_key = split_records.record_key
