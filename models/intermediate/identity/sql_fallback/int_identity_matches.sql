-- Warehouses without dbt Python models (PostgreSQL) run identity resolution deterministically:
-- no probabilistic pairs. The Splink matcher (int_identity_matches.py) runs on DuckDB.
select
    cast(null as varchar) as record_key_l,
    cast(null as varchar) as record_key_r,
    cast(null as double precision) as match_probability,
    cast(null as double precision) as match_weight,
    cast(null as varchar) as agreed_fields,
    cast(null as varchar) as disagreed_fields
where false
