-- Every marketing touch a profile had: visits that came through a campaign or another site,
-- email clicks, and the campaign an order was placed from. Direct visits are no touch.

with

records as (

    select * from {{ ref('int_profile_records') }}

),

web_visits as (

    select
        'web:' || sessions.session_id as touchpoint_id,
        sessions.profile_id,
        'visit' as touch_type,
        sessions.started_at as touched_at,
        sessions.channel,
        coalesce(sessions.utm_source, sessions.referrer) as touch_source,
        sessions.utm_campaign as campaign
    from {{ ref('int_web_sessions') }} as sessions
    where sessions.channel != 'direct' and sessions.profile_id is not null

),

email_clicks as (

    select
        'email:' || activity.activity_id as touchpoint_id,
        records.profile_id,
        'email_click' as touch_type,
        activity.occurred_at as touched_at,
        'email' as channel,
        'newsletter' as touch_source,
        activity.campaign_name as campaign
    from {{ ref('stg_email__activity') }} as activity
    inner join records
        on records.source = 'email' and activity.subscriber_id = records.source_record_id
    where activity.activity_type = 'click' and activity.occurred_at is not null

),

order_campaigns as (

    select
        'shop:' || orders.order_id as touchpoint_id,
        records.profile_id,
        'order_campaign' as touch_type,
        orders.ordered_at as touched_at,
        {{ marketing_channel('orders.utm_medium', 'orders.utm_source', 'null') }} as channel,
        orders.utm_source as touch_source,
        orders.utm_campaign as campaign
    from {{ ref('stg_shop__orders') }} as orders
    inner join records
        on
            records.source = 'shop'
            and records.source_record_id = cast(orders.customer_id as {{ dbt.type_string() }})
    where orders.utm_medium is not null and orders.ordered_at is not null

)

select * from web_visits
union all
select * from email_clicks
union all
select * from order_campaigns
