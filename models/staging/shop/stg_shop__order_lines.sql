{{ config(
    materialized=incremental_materialization(),
    unique_key='order_line_id',
    incremental_strategy=incremental_strategy_for_target(),
    post_hook="{{ delete_rows_gone_from(source('shop', 'order_lines'), 'order_line_id') }}",
) }}

with

source as (

    select * from {{ source('shop', 'order_lines') }}
    {{ loaded_since_last_run() }}

),

renamed as (

    select
        order_line_id,
        order_id,
        sku,
        product_name,
        category as product_category,
        nullif(trim(brand), '') as brand,
        upper(nullif(trim(size), '')) as size,
        cast(quantity as integer) as quantity,
        cast(unit_price as decimal(12, 2)) as unit_price,
        cast(quantity as integer) * cast(unit_price as decimal(12, 2)) as line_amount,
        _loaded_at as loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('renamed', 'order_line_id', [
        'loaded_at desc', 'quantity desc nulls last', 'unit_price desc nulls last'
    ]) }}

)

select * from deduplicated
