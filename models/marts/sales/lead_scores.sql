-- Lead score per CRM lead from the rules in var cdp_lead_scoring: behaviour and fit points,
-- the rules that fired (so a rep sees why), and whether the lead is marketing qualified.

{%- set scoring = var('cdp_lead_scoring') %}

with

features as (

    select * from {{ ref('int_lead_features') }}

),

fired_rules as (

    {{ fired_lead_score_rules('features') }}

),

totals as (

    select
        contact_id,
        sum(case when rule_kind = 'behaviour' then points else 0 end) as behaviour_score,
        sum(case when rule_kind = 'fit' then points else 0 end) as fit_score,
        {{ dbt.listagg('rule_name', "', '", "order by points desc, rule_name") }} as score_reasons
    from fired_rules
    group by contact_id

)

select
    features.contact_id,
    features.profile_id,
    features.lead_status,
    cast(coalesce(totals.behaviour_score, 0) as integer) as behaviour_score,
    cast(coalesce(totals.fit_score, 0) as integer) as fit_score,
    cast(coalesce(totals.behaviour_score, 0) + coalesce(totals.fit_score, 0) as integer)
        as lead_score,
    coalesce(totals.score_reasons, '') as score_reasons,
    coalesce(totals.behaviour_score, 0) + coalesce(totals.fit_score, 0)
    >= {{ scoring.mql_threshold }} as is_marketing_qualified,
    -- what the rules look at, for the predictive lead score (cdp/intelligence/lead_scoring.py)
    features.job_title,
    features.employee_count,
    features.industry,
    features.country_code,
    features.lead_source,
    features.web_events_last_30_days,
    features.visits_last_90_days,
    features.contact_page_views,
    features.form_submissions,
    features.visits,
    features.page_views,
    features.emails_received,
    features.email_opens,
    features.email_clicks,
    features.has_unsubscribed
from features
left join totals on features.contact_id = totals.contact_id
