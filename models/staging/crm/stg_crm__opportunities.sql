with

source as (

    select * from {{ source('crm', 'opportunities') }}

),

renamed as (

    select
        opportunity_id,
        contact_id,
        account_id,
        name as opportunity_name,
        stage,
        cast(amount as decimal(14, 2)) as amount,
        upper(currency) as currency,
        {{ local_to_utc('created_at') }} as created_at,
        {{ local_to_utc('closed_at') }} as closed_at,
        _loaded_at as loaded_at
    from source

),

latest as (

    {{ latest_per_key('renamed', 'opportunity_id', 'loaded_at desc, closed_at desc nulls last') }}

)

select * from latest
