-- Companies the firmographics API found. Enrichment never blocks a build: before the first
-- enrichment run the cache does not exist and this model is empty.

with

source as (

    {{ source_or_empty('enrichment', 'company_firmographics', {
        'email_domain': dbt.type_string(),
        'lookup_status': dbt.type_string(),
        'company_name': dbt.type_string(),
        'industry': dbt.type_string(),
        'employee_count': 'integer',
        'country_code': dbt.type_string(),
        'annual_revenue_eur': 'numeric(18, 2)',
        'fetched_at': 'timestamp',
    }) }}

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
