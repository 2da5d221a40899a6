-- One row per profile with everything the profile API serves about it: the golden record,
-- traits, predictions, next best action and preferences, and its identifiers, audiences and consent
-- statements as lists. The `profile_api` sync writes it to the profile store.

with

customers as (

    select * from {{ ref('customers') }}

),

traits as (

    select * from {{ ref('customer_traits') }}

),

actions as (

    select * from {{ ref('customer_next_best_actions') }}

),

preferences as (

    select * from {{ ref('customer_preferences') }}

),

identifiers as (

    -- the identifiers the profile is found by (not junk, not shared by several people)
    select
        profile_id,
        {{ distinct_list("identifier_kind || ':' || identifier_value") }} as identifiers
    from {{ ref('customer_identifiers') }}
    where not is_blocklisted and not is_shared
    group by profile_id

),

audiences as (

    select
        profile_id,
        {{ distinct_list('audience') }} as audiences
    from {{ ref('audience_memberships') }}
    group by profile_id

),

consents as (

    select
        profile_id,
        {{ distinct_list(
            "purpose || ':' || channel || ':' || case when is_granted then 'granted' else 'withdrawn' end"
        ) }} as consents
    from {{ ref('customer_consents') }}
    group by profile_id

)

select
    customers.profile_id,
    customers.is_identified,
    customers.first_name,
    customers.last_name,
    customers.full_name,
    customers.email,
    customers.phone,
    customers.street,
    customers.postal_code,
    customers.city,
    customers.country_code,
    customers.birth_date,
    customers.company_name,
    customers.crm_lead_status,
    customers.crm_owner_name,
    customers.sources,
    customers.record_count,
    customers.first_seen_at,
    customers.last_seen_at,
    customers.profile_updated_at,
    traits.purchase_count,
    traits.revenue_eur,
    traits.average_order_value_eur,
    traits.last_purchase_at,
    traits.days_since_last_purchase,
    traits.rfm_segment,
    traits.preferred_purchase_channel,
    traits.email_open_rate,
    traits.email_click_rate,
    traits.page_views,
    traits.last_web_visit_at,
    traits.open_ticket_count,
    traits.has_open_critical_ticket,
    traits.average_review_rating,
    traits.lifecycle_stage,
    actions.churn_probability,
    actions.churn_risk,
    actions.predicted_clv_12m_eur,
    actions.next_best_action,
    actions.next_best_action_reason,
    actions.next_best_channel,
    preferences.top_category,
    preferences.top_brand,
    preferences.preferred_shoe_size,
    preferences.preferred_clothing_size,
    preferences.recommended_sku,
    preferences.recommended_product_name,
    preferences.engagement_score,
    preferences.preferred_channel,
    identifiers.identifiers,
    audiences.audiences,
    consents.consents
from customers
left join traits on customers.profile_id = traits.profile_id
left join actions on customers.profile_id = actions.profile_id
left join preferences on customers.profile_id = preferences.profile_id
left join identifiers on customers.profile_id = identifiers.profile_id
left join audiences on customers.profile_id = audiences.profile_id
left join consents on customers.profile_id = consents.profile_id
