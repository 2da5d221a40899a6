-- Companies the firmographics API found. Enrichment never blocks a build: before the first
-- enrichment run the cache does not exist and this model is empty.

{%- set cache = source('enrichment', 'company_firmographics') %}
{%- set cache_exists = execute and adapter.get_relation(
    database=cache.database, schema=cache.schema, identifier=cache.identifier
) is not none %}

{% if cache_exists %}

with

source as (

    select * from {{ cache }}

),

renamed as (

    select
        lower(trim(email_domain)) as email_domain,
        trim(company_name) as company_name,
        industry,
        cast(employee_count as integer) as employee_count,
        upper(country_code) as country_code,
        cast(annual_revenue_eur as numeric(18, 2)) as annual_revenue_eur,
        fetched_at
    from source
    where lookup_status = 'found'

)

select * from renamed

{% else %}

select
    cast(null as {{ dbt.type_string() }}) as email_domain,
    cast(null as {{ dbt.type_string() }}) as company_name,
    cast(null as {{ dbt.type_string() }}) as industry,
    cast(null as integer) as employee_count,
    cast(null as {{ dbt.type_string() }}) as country_code,
    cast(null as numeric(18, 2)) as annual_revenue_eur,
    cast(null as timestamp) as fetched_at
where 1 = 0

{% endif %}
