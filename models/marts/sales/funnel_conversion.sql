-- Conversion from each funnel stage to the next, with the median time it took, by lead source
-- and first-touch campaign, by lead source ('(all)' campaigns) and overall ('(all)' both).

with

funnel as (

    select * from {{ ref('lead_funnel') }}

),

funnel_steps as (

    select
        steps.step_number,
        steps.from_stage,
        steps.to_stage
    from (
        values
        (1, 'lead', 'mql'),
        (2, 'mql', 'sal'),
        (3, 'sal', 'sql'),
        (4, 'sql', 'opportunity'),
        (5, 'opportunity', 'customer')
    ) as steps (step_number, from_stage, to_stage)

),

lead_steps as (

    -- every lead once per step: whether it entered the step's stage, reached the next, and when
    select
        funnel_steps.step_number,
        funnel_steps.from_stage,
        funnel_steps.to_stage,
        funnel.lead_source,
        funnel.first_touch_campaign,
        case funnel_steps.step_number
            when 1 then funnel.lead_at
            when 2 then funnel.mql_at
            when 3 then funnel.sal_at
            when 4 then funnel.sql_at
            else funnel.opportunity_at
        end as entered_at,
        case funnel_steps.step_number
            when 1 then funnel.mql_at
            when 2 then funnel.sal_at
            when 3 then funnel.sql_at
            when 4 then funnel.opportunity_at
            else funnel.customer_at
        end as converted_at,
        case funnel_steps.step_number
            when 1 then funnel.days_lead_to_mql
            when 2 then funnel.days_mql_to_sal
            when 3 then funnel.days_sal_to_sql
            when 4 then funnel.days_sql_to_opportunity
            else funnel.days_opportunity_to_customer
        end as days_to_convert
    from funnel
    cross join funnel_steps

),

entered as (

    select * from lead_steps
    where entered_at is not null

),

by_source_and_campaign as (

    select
        step_number,
        from_stage,
        to_stage,
        lead_source,
        first_touch_campaign,
        count(*) as leads_entered,
        count(converted_at) as leads_converted,
        percentile_cont(0.5) within group (order by days_to_convert) as median_days_to_convert
    from entered
    group by step_number, from_stage, to_stage, lead_source, first_touch_campaign

),

by_source as (

    select
        step_number,
        from_stage,
        to_stage,
        lead_source,
        '(all)' as first_touch_campaign,
        count(*) as leads_entered,
        count(converted_at) as leads_converted,
        percentile_cont(0.5) within group (order by days_to_convert) as median_days_to_convert
    from entered
    group by step_number, from_stage, to_stage, lead_source

),

overall as (

    select
        step_number,
        from_stage,
        to_stage,
        '(all)' as lead_source,
        '(all)' as first_touch_campaign,
        count(*) as leads_entered,
        count(converted_at) as leads_converted,
        percentile_cont(0.5) within group (order by days_to_convert) as median_days_to_convert
    from entered
    group by step_number, from_stage, to_stage

),

all_levels as (

    select * from by_source_and_campaign
    union all
    select * from by_source
    union all
    select * from overall

)

select
    {{ dbt.hash("from_stage || '|' || lead_source || '|' || first_touch_campaign") }}
        as funnel_step_id,
    step_number,
    from_stage,
    to_stage,
    lead_source,
    first_touch_campaign,
    leads_entered,
    leads_converted,
    round(1.0 * leads_converted / leads_entered, 4) as conversion_rate,
    round(cast(median_days_to_convert as numeric), 1) as median_days_to_convert
from all_levels
