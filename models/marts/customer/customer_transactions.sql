{{ config(materialized='view') }}

-- Every purchase of every customer, online and in store, in EUR: for consumers outside dbt
-- (the churn and CLV models train on it).

select * from {{ ref('int_customer_transactions') }}
