with

source as (

    select * from {{ source('shop', 'orders') }}

),

renamed as (

    select
        order_id,
        trim(customer_id) as customer_id,
        {{ normalize_email('email') }} as email,
        lower(status) as order_status,
        upper(currency) as currency,
        cast(total_amount as decimal(12, 2)) as total_amount,
        lower(utm_source) as utm_source,
        lower(utm_medium) as utm_medium,
        lower(utm_campaign) as utm_campaign,
        {{ iso_to_utc('ordered_at') }} as ordered_at,
        _loaded_at as loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('renamed', 'order_id', [
        'loaded_at desc', 'ordered_at desc nulls last', 'total_amount desc nulls last'
    ]) }}

)

select * from deduplicated
