-- Warehouses without dbt Python models (PostgreSQL) run identity resolution deterministically:
-- no probabilistic pairs. The Splink matcher (int_identity_matches.py) runs on DuckDB.
select
    cast(null as {{ dbt.type_string() }}) as record_key_l,
    cast(null as {{ dbt.type_string() }}) as record_key_r,
    cast(null as {{ dbt.type_float() }}) as match_probability,
    cast(null as {{ dbt.type_float() }}) as match_weight,
    cast(null as {{ dbt.type_string() }}) as agreed_fields,
    cast(null as {{ dbt.type_string() }}) as disagreed_fields
where false
