-- Conversions and revenue credited to each channel and campaign under each attribution model.
-- Conversions without a touch in the lookback window count as channel 'unattributed', so
-- every model adds up to the same totals.

{%- set attribution_models = ['first_touch', 'last_touch', 'linear', 'time_decay', 'position_based'] %}

with

credits as (

    select * from {{ ref('attribution_touchpoint_credits') }}

),

unattributed as (

    select
        conversions.conversion_type,
        'unattributed' as channel,
        '(none)' as campaign,
        {%- for model in attribution_models %}
        1.0 as {{ model }}_credit,
        conversions.revenue_eur as {{ model }}_revenue_eur{{ "," if not loop.last }}
        {%- endfor %}
    from {{ ref('int_attribution_conversions') }} as conversions
    where not exists (
        select 1 from credits where credits.conversion_id = conversions.conversion_id
    )

),

all_credits as (

    select
        conversion_type,
        channel,
        coalesce(campaign, '(none)') as campaign,
        {%- for model in attribution_models %}
        {{ model }}_credit,
        {{ model }}_revenue_eur{{ "," if not loop.last }}
        {%- endfor %}
    from credits
    union all
    select * from unattributed

)

select
    conversion_type,
    channel,
    campaign,
    {%- for model in attribution_models %}
    round(sum({{ model }}_credit), 3) as {{ model }}_conversions,
    round(sum({{ model }}_revenue_eur), 2) as {{ model }}_revenue_eur{{ "," if not loop.last }}
    {%- endfor %}
from all_credits
group by conversion_type, channel, campaign
