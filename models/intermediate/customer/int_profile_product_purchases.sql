-- What each profile bought, per product (with its brand and the size bought most): shop order
-- lines of orders that count as revenue, joined to the profile through
-- int_customer_transactions (which owns the order-to-profile link), in EUR. Store purchases
-- carry no lines, so they name no product.

with

orders as (

    select * from {{ ref('int_customer_transactions') }}
    where channel = 'shop' and is_revenue

),

order_lines as (

    select * from {{ ref('stg_shop__order_lines') }}
    where sku is not null and quantity > 0

),

rates as (

    select * from {{ ref('currency_rates') }}

),

lines as (

    select
        orders.profile_id,
        order_lines.sku,
        order_lines.product_name,
        order_lines.product_category,
        order_lines.brand,
        order_lines.size,
        order_lines.order_id,
        order_lines.quantity,
        orders.transacted_at,
        order_lines.line_amount * rates.eur_per_unit as line_amount_eur
    from order_lines
    inner join orders on order_lines.order_id = orders.transaction_id
    left join rates on orders.currency = rates.currency

),

-- one name, category and brand per product, the newest sold, however the shop renamed it
catalog as (

    select
        sku,
        product_name,
        product_category,
        brand,
        row_number() over (
            partition by sku order by transacted_at desc, product_name asc, product_category asc
        ) as recency
    from lines

),

-- the size the profile bought most of each product (sizes are per line, not per product)
sizes as (

    select
        profile_id,
        sku,
        size,
        row_number() over (
            partition by profile_id, sku
            order by sum(quantity) desc, max(transacted_at) desc, size asc
        ) as size_rank
    from lines
    where size is not null
    group by profile_id, sku, size

),

bought as (

    select
        profile_id,
        sku,
        count(distinct order_id) as order_count,
        sum(quantity) as quantity,
        round(sum(line_amount_eur), 2) as spend_eur,
        min(transacted_at) as first_bought_at,
        max(transacted_at) as last_bought_at
    from lines
    group by profile_id, sku

)

select
    bought.profile_id,
    bought.sku,
    catalog.product_name,
    catalog.product_category,
    catalog.brand,
    sizes.size as most_bought_size,
    bought.order_count,
    bought.quantity,
    bought.spend_eur,
    bought.first_bought_at,
    bought.last_bought_at
from bought
inner join catalog on bought.sku = catalog.sku and catalog.recency = 1
left join sizes
    on bought.profile_id = sizes.profile_id and bought.sku = sizes.sku and sizes.size_rank = 1
