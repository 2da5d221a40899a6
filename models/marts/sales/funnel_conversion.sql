-- Conversion from each funnel stage to the next, with the median time it took, by lead source
-- and first-touch campaign, by lead source alone and overall ('(all)').

{%- set steps = [
    ('lead', 'mql', 'lead_at', 'mql_at', 'days_lead_to_mql'),
    ('mql', 'sal', 'mql_at', 'sal_at', 'days_mql_to_sal'),
    ('sal', 'sql', 'sal_at', 'sql_at', 'days_sal_to_sql'),
    ('sql', 'opportunity', 'sql_at', 'opportunity_at', 'days_sql_to_opportunity'),
    ('opportunity', 'customer', 'opportunity_at', 'customer_at', 'days_opportunity_to_customer'),
] %}

with

funnel as (

    select * from {{ ref('lead_funnel') }}

),

steps as (

    {%- for from_stage, to_stage, from_at, to_at, days in steps %}
    select
        {{ loop.index }} as step_number,
        '{{ from_stage }}' as from_stage,
        '{{ to_stage }}' as to_stage,
        lead_source,
        first_touch_campaign,
        {{ to_at }} is not null as is_converted,
        {{ days }} as days_to_convert
    from funnel
    where {{ from_at }} is not null
    {{ "union all" if not loop.last }}
    {%- endfor %}

),

rolled_up as (

    select
        step_number,
        from_stage,
        to_stage,
        case when grouping(lead_source) = 1 then '(all)' else lead_source end as lead_source,
        case
            when grouping(first_touch_campaign) = 1 then '(all)' else first_touch_campaign
        end as first_touch_campaign,
        count(*) as leads_entered,
        count(case when is_converted then 1 end) as leads_converted,
        percentile_cont(0.5) within group (order by days_to_convert) as median_days_to_convert
    from steps
    group by grouping sets (
        (step_number, from_stage, to_stage, lead_source, first_touch_campaign),
        (step_number, from_stage, to_stage, lead_source),
        (step_number, from_stage, to_stage)
    )

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
from rolled_up
