-- One row of traits per profile: purchases with RFM scores, email and web engagement, support,
-- reviews, consent and the lifecycle stage, for segments, audiences and syncs.

with

customers as (

    select * from {{ ref('customers') }}

),

records as (

    select * from {{ ref('customer_profile_records') }}

),

purchases as (

    select
        profile_id,
        count(case when is_revenue then 1 end) as purchase_count,
        count(case when is_revenue and channel = 'shop' then 1 end) as online_order_count,
        count(case when is_revenue and channel = 'store' then 1 end) as store_purchase_count,
        coalesce(sum(case when is_revenue then amount_eur end), 0) as revenue_eur,
        min(case when is_revenue then transacted_at end) as first_purchase_at,
        max(case when is_revenue then transacted_at end) as last_purchase_at
    from {{ ref('int_customer_transactions') }}
    group by profile_id

),

engagement as (

    select * from {{ ref('int_profile_engagement') }}

),

tickets as (

    select
        records.profile_id,
        count(*) as ticket_count,
        count(case when tickets.ticket_status in ('open', 'pending') then 1 end)
            as open_ticket_count,
        max(
            case
                when tickets.ticket_status in ('open', 'pending')
                    then case tickets.priority
                        when 'critical' then 4 when 'high' then 3 when 'normal' then 2 else 1
                    end
            end
        ) as open_priority_rank
    from {{ ref('stg_support__tickets') }} as tickets
    inner join records
        on records.source = 'support' and tickets.ticket_id = records.source_record_id
    group by records.profile_id

),

reviews as (

    select
        records.profile_id,
        count(*) as review_count,
        round(avg(reviews.rating), 2) as average_review_rating
    from {{ ref('stg_reviews__reviews') }} as reviews
    inner join records
        on records.source = 'reviews' and reviews.review_id = records.source_record_id
    group by records.profile_id

),

consents as (

    select
        profile_id,
        {{ consent_trait_columns() }}
    from {{ ref('customer_consents') }}
    group by profile_id

),

rfm as (

    -- Quintiles by cumulative distribution so that ties share a score (5 = best).
    select
        profile_id,
        cast(ceil(5 * cume_dist() over (order by last_purchase_at)) as integer) as recency_score,
        cast(ceil(5 * cume_dist() over (order by purchase_count)) as integer) as frequency_score,
        cast(ceil(5 * cume_dist() over (order by revenue_eur)) as integer) as monetary_score
    from purchases
    where purchase_count > 0

)

select
    customers.profile_id,
    customers.is_identified,
    customers.first_seen_at,
    customers.last_seen_at,
    coalesce(purchases.purchase_count, 0) as purchase_count,
    coalesce(purchases.online_order_count, 0) as online_order_count,
    coalesce(purchases.store_purchase_count, 0) as store_purchase_count,
    coalesce(purchases.revenue_eur, 0) as revenue_eur,
    case
        when purchases.purchase_count > 0
            then round(purchases.revenue_eur / purchases.purchase_count, 2)
    end as average_order_value_eur,
    purchases.first_purchase_at,
    purchases.last_purchase_at,
    {{ dbt.datediff('purchases.last_purchase_at', cdp_now(), 'day') }}
        as days_since_last_purchase,
    rfm.recency_score,
    rfm.frequency_score,
    rfm.monetary_score,
    case
        when rfm.profile_id is null then null
        when rfm.recency_score >= 4 and rfm.frequency_score >= 4 then 'champions'
        when rfm.recency_score >= 3 and rfm.frequency_score >= 3 then 'loyal'
        when rfm.recency_score >= 4 then 'new_customers'
        when rfm.recency_score = 3 then 'needs_attention'
        when rfm.frequency_score >= 4 then 'cant_lose_them'
        when rfm.frequency_score >= 3 then 'at_risk'
        else 'hibernating'
    end as rfm_segment,
    case
        when
            coalesce(purchases.online_order_count, 0) = 0
            and coalesce(purchases.store_purchase_count, 0) = 0 then null
        when purchases.online_order_count >= purchases.store_purchase_count then 'online'
        else 'store'
    end as preferred_purchase_channel,
    coalesce(engagement.emails_sent, 0) as emails_sent,
    coalesce(engagement.emails_opened, 0) as emails_opened,
    coalesce(engagement.emails_clicked, 0) as emails_clicked,
    case
        when engagement.emails_sent > 0
            then round(1.0 * engagement.emails_opened / engagement.emails_sent, 3)
    end as email_open_rate,
    case
        when engagement.emails_sent > 0
            then round(1.0 * engagement.emails_clicked / engagement.emails_sent, 3)
    end as email_click_rate,
    coalesce(engagement.has_unsubscribed, false) as has_unsubscribed,
    coalesce(engagement.web_events, 0) as web_events,
    coalesce(engagement.page_views, 0) as page_views,
    coalesce(engagement.web_events_last_30_days, 0) as web_events_last_30_days,
    engagement.last_web_visit_at,
    coalesce(tickets.ticket_count, 0) as ticket_count,
    coalesce(tickets.open_ticket_count, 0) as open_ticket_count,
    case tickets.open_priority_rank
        when 4 then 'critical' when 3 then 'high' when 2 then 'normal' when 1 then 'low'
    end as highest_open_ticket_priority,
    coalesce(tickets.open_priority_rank = 4, false) as has_open_critical_ticket,
    coalesce(reviews.review_count, 0) as review_count,
    reviews.average_review_rating,
    {{ consent_trait_columns('consents') }},
    case
        when purchases.purchase_count > 0 then 'customer'
        when customers.crm_lead_status is not null then 'lead'
        when customers.is_identified then 'subscriber'
        else 'visitor'
    end as lifecycle_stage
from customers
left join purchases on customers.profile_id = purchases.profile_id
left join engagement on customers.profile_id = engagement.profile_id
left join tickets on customers.profile_id = tickets.profile_id
left join reviews on customers.profile_id = reviews.profile_id
left join consents on customers.profile_id = consents.profile_id
left join rfm on customers.profile_id = rfm.profile_id
