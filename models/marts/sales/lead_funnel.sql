-- One row per CRM lead: when it entered each stage lead -> MQL -> SAL -> SQL -> opportunity ->
-- customer, how long each step took, and the lead source and first-touch campaign to compare by.

with

stages as (

    select * from {{ ref('int_lead_stages') }}

),

first_touches as (

    select
        profile_id,
        channel as first_touch_channel,
        campaign as first_touch_campaign,
        row_number() over (partition by profile_id order by touched_at, touchpoint_id) as touch_rank
    from {{ ref('int_attribution_touchpoints') }}

)

select
    stages.contact_id,
    stages.profile_id,
    stages.lead_source,
    coalesce(first_touches.first_touch_channel, 'direct') as first_touch_channel,
    coalesce(first_touches.first_touch_campaign, '(none)') as first_touch_campaign,
    stages.lead_status,
    case
        when stages.unqualified_at is not null and stages.customer_at is null then 'unqualified'
        when stages.customer_at is not null then 'customer'
        when stages.opportunity_at is not null then 'opportunity'
        when stages.sql_at is not null then 'sql'
        when stages.sal_at is not null then 'sal'
        when stages.mql_at is not null then 'mql'
        else 'lead'
    end as current_stage,
    stages.lead_at,
    stages.mql_at,
    stages.sal_at,
    stages.sql_at,
    stages.opportunity_at,
    stages.customer_at,
    stages.unqualified_at,
    {{ days_between('stages.lead_at', 'stages.mql_at') }} as days_lead_to_mql,
    {{ days_between('stages.mql_at', 'stages.sal_at') }} as days_mql_to_sal,
    {{ days_between('stages.sal_at', 'stages.sql_at') }} as days_sal_to_sql,
    {{ days_between('stages.sql_at', 'stages.opportunity_at') }} as days_sql_to_opportunity,
    {{ days_between('stages.opportunity_at', 'stages.customer_at') }} as days_opportunity_to_customer
from stages
left join first_touches
    on stages.profile_id = first_touches.profile_id and first_touches.touch_rank = 1
