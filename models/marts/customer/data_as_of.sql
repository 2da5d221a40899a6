{{ config(materialized='view') }}

-- The time the data stands at (see int_data_as_of): what recency traits count back from, for
-- consumers outside dbt that must count the same way.

select * from {{ ref('int_data_as_of') }}
