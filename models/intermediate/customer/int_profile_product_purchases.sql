-- What each profile bought, per product: shop order lines of orders that count as revenue,
-- joined to the profile through int_customer_transactions (which owns the order-to-profile
-- link), in EUR. Store purchases carry no lines, so they name no product.

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
        order_lines.order_id,
        order_lines.quantity,
        orders.transacted_at,
        order_lines.line_amount * rates.eur_per_unit as line_amount_eur
    from order_lines
    inner join orders on order_lines.order_id = orders.transaction_id
    left join rates on orders.currency = rates.currency

),

-- one name and category per product, the newest sold, however the shop renamed it over time
catalog as (

    select
        sku,
        product_name,
        product_category,
        row_number() over (
            partition by sku order by transacted_at desc, product_name asc, product_category asc
        ) as recency
    from lines

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
    bought.order_count,
    bought.quantity,
    bought.spend_eur,
    bought.first_bought_at,
    bought.last_bought_at
from bought
inner join catalog on bought.sku = catalog.sku and catalog.recency = 1
