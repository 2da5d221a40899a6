{{ config(materialized='view') }}

-- Every consent statement about each customer, the history behind customer_consents: for the
-- access export and other consumers outside dbt.

select * from {{ ref('int_consent_statements') }}
