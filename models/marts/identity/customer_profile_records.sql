{{ config(materialized='view') }}

-- Which source records make up each customer profile: the profile spine, for consumers
-- outside dbt (the intermediate models read int_profile_records itself).

select * from {{ ref('int_profile_records') }}
