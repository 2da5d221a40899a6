with

source as (

    select * from {{ source('crm', 'accounts') }}

),

renamed as (

    select
        account_id,
        trim(name) as account_name,
        lower(trim(domain)) as email_domain,
        industry,
        cast(employees as integer) as employee_count,
        {{ normalize_country('country') }} as country_code,
        owner as owner_name,
        {{ local_to_utc('created_at') }} as created_at,
        {{ local_to_utc('updated_at') }} as updated_at,
        _loaded_at as loaded_at
    from source

),

latest as (

    {{ latest_per_key('renamed', 'account_id', [
        'updated_at desc nulls last', 'loaded_at desc', 'created_at desc nulls last',
        'employee_count desc nulls last'
    ]) }}

)

select * from latest
