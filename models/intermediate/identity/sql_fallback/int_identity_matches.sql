-- Warehouses without dbt Python models: the same Splink scoring runs between the dbt steps, on
-- PostgreSQL as the Dagster asset matcher/identity_match_pairs, on Spark as `python -m
-- cdp.identity.spark`. With var cdp_probabilistic_matching false, identity resolution is deterministic.
{% if target.type in ('postgres', 'spark') and var('cdp_probabilistic_matching', true) %}

with

pairs as (

    select * from {{ ref('stg_matcher__identity_match_pairs') }}

)

select
    record_key_l,
    record_key_r,
    match_probability,
    match_weight,
    agreed_fields,
    disagreed_fields
from pairs

{% else %}

select
    cast(null as {{ dbt.type_string() }}) as record_key_l,
    cast(null as {{ dbt.type_string() }}) as record_key_r,
    cast(null as {{ dbt.type_float() }}) as match_probability,
    cast(null as {{ dbt.type_float() }}) as match_weight,
    cast(null as {{ dbt.type_string() }}) as agreed_fields,
    cast(null as {{ dbt.type_string() }}) as disagreed_fields
where false

{% endif %}
