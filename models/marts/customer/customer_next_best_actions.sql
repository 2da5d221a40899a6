-- One next best action per profile from transparent rules over traits and predictions, the
-- first rule that applies wins. The reason names the rule, the channel respects consent.

{%- set nba = var('cdp_next_best_action') %}

with

traits as (

    select * from {{ ref('customer_traits') }}

),

predictions as (

    select * from {{ ref('stg_ml__customer_predictions') }}

),

preferences as (

    select * from {{ ref('customer_preferences') }}

),

leads as (

    select
        profile_id,
        bool_or(is_marketing_qualified) as is_marketing_qualified
    from {{ ref('lead_scores') }}
    where profile_id is not null
    group by profile_id

),

decided as (

    select
        traits.profile_id,
        predictions.churn_probability,
        predictions.predicted_clv_12m_eur,
        case
            when predictions.churn_probability is null then null
            when predictions.churn_probability >= {{ nba.churn_risk_threshold }} then 'high'
            when predictions.churn_probability >= {{ nba.churn_risk_threshold / 2 }} then 'medium'
            else 'low'
        end as churn_risk,
        case
            when traits.has_open_critical_ticket then 'resolve_support_case'
            when
                predictions.churn_probability >= {{ nba.churn_risk_threshold }}
                and traits.monetary_score >= {{ nba.high_value_monetary_score }}
                then 'personal_win_back_call'
            when predictions.churn_probability >= {{ nba.churn_risk_threshold }}
                then 'win_back_offer'
            when traits.rfm_segment = 'champions' then 'loyalty_reward'
            when traits.purchase_count = 1 and traits.days_since_last_purchase <= 60
                then 'second_purchase_nudge'
            when traits.lifecycle_stage = 'lead' and leads.is_marketing_qualified
                then 'sales_follow_up'
            when traits.purchase_count = 0 and traits.web_events_last_30_days > 0
                then 'first_purchase_incentive'
            when traits.purchase_count > 0 then 'cross_sell_recommendation'
            else 'nurture_content'
        end as next_best_action,
        traits.consent_email_marketing_email,
        traits.consent_personalization_web,
        preferences.recommended_sku,
        preferences.recommended_product_name,
        preferences.recommendation_reason
    from traits
    left join predictions on traits.profile_id = predictions.profile_id
    left join leads on traits.profile_id = leads.profile_id
    left join preferences on traits.profile_id = preferences.profile_id

)

select
    profile_id,
    churn_probability,
    churn_risk,
    predicted_clv_12m_eur,
    next_best_action,
    case next_best_action
        when 'resolve_support_case' then 'open critical support ticket: no marketing until solved'
        when 'personal_win_back_call' then 'high churn risk and high past spend'
        when 'win_back_offer' then 'high churn risk'
        when 'loyalty_reward' then 'RFM champion'
        when 'second_purchase_nudge' then 'first purchase in the last 60 days'
        when 'sales_follow_up' then 'marketing-qualified lead'
        when 'first_purchase_incentive' then 'active on the website, no purchase yet'
        when 'cross_sell_recommendation'
            then
                coalesce(
                    'offer ' || recommended_product_name || ': ' || recommendation_reason,
                    'customer without a more urgent need'
                )
        else 'no purchase and no recent activity'
    end as next_best_action_reason,
    case
        when next_best_action = 'resolve_support_case' then 'support'
        when next_best_action in ('personal_win_back_call', 'sales_follow_up') then 'sales_rep'
        when consent_email_marketing_email then 'email'
        when consent_personalization_web is not false then 'website'
        else 'none'
    end as next_best_channel,
    -- the product a cross-sell offers (customer_preferences)
    case
        when next_best_action = 'cross_sell_recommendation' then recommended_sku
    end as recommended_sku,
    case
        when next_best_action = 'cross_sell_recommendation' then recommended_product_name
    end as recommended_product_name
from decided
