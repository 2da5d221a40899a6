-- Every purchase a profile made, online (shop orders) and in store (loyalty card), in EUR.
-- Cancelled and refunded orders stay, flagged, so traits can count them apart from revenue.
-- A purchase whose amount or time did not parse (kept in raw, null in staging) is no
-- transaction to count or value.

with

records as (

    select * from {{ ref('int_profile_records') }}

),

rates as (

    select * from {{ ref('currency_rates') }}

),

shop_orders as (

    select
        records.profile_id,
        'shop' as channel,
        orders.order_id as transaction_id,
        orders.ordered_at as transacted_at,
        orders.total_amount as amount,
        orders.currency,
        orders.order_status not in ('cancelled', 'refunded') as is_revenue
    from {{ ref('stg_shop__orders') }} as orders
    inner join records
        on
            records.source = 'shop'
            and records.source_record_id = cast(orders.customer_id as {{ dbt.type_string() }})

),

store_purchases as (

    select
        records.profile_id,
        'store' as channel,
        purchases.purchase_id as transaction_id,
        purchases.purchased_at as transacted_at,
        purchases.amount,
        purchases.currency,
        true as is_revenue
    from {{ ref('stg_loyalty__purchases') }} as purchases
    inner join records
        on records.source = 'loyalty' and purchases.card_number = records.source_record_id

),

transactions as (

    select * from shop_orders
    union all
    select * from store_purchases

)

select
    transactions.profile_id,
    transactions.channel,
    transactions.transaction_id,
    transactions.transacted_at,
    transactions.amount,
    transactions.currency,
    transactions.is_revenue,
    round(transactions.amount * rates.eur_per_unit, 2) as amount_eur
from transactions
left join rates on transactions.currency = rates.currency
where transactions.amount is not null and transactions.transacted_at is not null
