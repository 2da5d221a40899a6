{{ config(materialized='view') }}

-- Everything a profile did, one row per event of any source system: web events, email
-- activity, shop orders, store purchases and support tickets, each with the profile it belongs
-- to (through the profile spine). Engagement traits, lead features, the 360-degree view and the
-- access export read their events here. A view: each reader filters it (one profile, one
-- source) and nothing is stored twice.

with

records as (

    select * from {{ ref('int_profile_records') }}

),

web_events as (

    select
        'web:' || events.event_id as event_key,
        records.profile_id,
        'web' as source,
        records.source_record_id,
        events.occurred_at,
        events.event_type as activity,
        'web ' || events.event_name as kind,
        coalesce(events.page_path, '') || ' ' || coalesce(events.utm_campaign, '') as detail
    from {{ ref('stg_web__events') }} as events
    inner join records
        on records.source = 'web' and events.anonymous_id = records.source_record_id

),

email_activity as (

    select
        'email:' || activity.activity_id as event_key,
        records.profile_id,
        'email' as source,
        records.source_record_id,
        activity.occurred_at,
        activity.activity_type as activity,
        'email ' || activity.activity_type as kind,
        coalesce(activity.campaign_name, '') as detail
    from {{ ref('stg_email__activity') }} as activity
    inner join records
        on records.source = 'email' and activity.subscriber_id = records.source_record_id

),

shop_orders as (

    select
        'shop:' || orders.order_id as event_key,
        records.profile_id,
        'shop' as source,
        records.source_record_id,
        orders.ordered_at as occurred_at,
        orders.order_status as activity,
        'order' as kind,
        orders.order_id || ' ' || orders.order_status || ' '
        || cast(orders.total_amount as {{ dbt.type_string() }}) || ' ' || orders.currency
            as detail
    from {{ ref('stg_shop__orders') }} as orders
    inner join records
        on
            records.source = 'shop'
            and records.source_record_id = cast(orders.customer_id as {{ dbt.type_string() }})

),

store_purchases as (

    select
        'loyalty:' || purchases.purchase_id as event_key,
        records.profile_id,
        'loyalty' as source,
        records.source_record_id,
        purchases.purchased_at as occurred_at,
        'purchase' as activity,
        'store purchase' as kind,
        purchases.store_id || ' ' || cast(purchases.amount as {{ dbt.type_string() }}) || ' '
        || purchases.currency as detail
    from {{ ref('stg_loyalty__purchases') }} as purchases
    inner join records
        on records.source = 'loyalty' and purchases.card_number = records.source_record_id

),

tickets as (

    select
        'support:' || tickets.ticket_id as event_key,
        records.profile_id,
        'support' as source,
        records.source_record_id,
        tickets.created_at as occurred_at,
        tickets.ticket_status as activity,
        'ticket' as kind,
        tickets.ticket_id || ' ' || tickets.priority || ' ' || tickets.ticket_status || ' '
        || tickets.subject as detail
    from {{ ref('stg_support__tickets') }} as tickets
    inner join records
        on records.source = 'support' and tickets.ticket_id = records.source_record_id

)

select * from web_events
union all
select * from email_activity
union all
select * from shop_orders
union all
select * from store_purchases
union all
select * from tickets
