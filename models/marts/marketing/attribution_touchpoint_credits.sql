-- Each conversion's credit split over the touches of the same profile in the lookback window
-- before it, under five models. Each model's credits sum to 1 per conversion.

{%- set settings = var('cdp_attribution') %}

with

conversions as (

    select * from {{ ref('int_attribution_conversions') }}

),

touchpoints as (

    select * from {{ ref('int_attribution_touchpoints') }}

),

paths as (

    select
        conversions.conversion_id,
        conversions.conversion_type,
        conversions.profile_id,
        conversions.converted_at,
        conversions.revenue_eur,
        touchpoints.touchpoint_id,
        touchpoints.touch_type,
        touchpoints.touched_at,
        touchpoints.channel,
        touchpoints.touch_source,
        touchpoints.campaign,
        {{ days_between('touchpoints.touched_at', 'conversions.converted_at') }}
            as days_before_conversion
    from conversions
    inner join touchpoints
        on
            conversions.profile_id = touchpoints.profile_id
            and conversions.converted_at >= touchpoints.touched_at
            and touchpoints.touched_at
            > conversions.converted_at - interval '{{ settings.lookback_days }} days'

),

positioned as (

    select
        *,
        row_number() over (
            partition by conversion_id order by touched_at, touchpoint_id
        ) as touch_position,
        count(*) over (partition by conversion_id) as touch_count,
        power(0.5, days_before_conversion / {{ settings.half_life_days }}) as decay_weight
    from paths

),

credited as (

    select
        *,
        case when touch_position = 1 then 1.0 else 0.0 end as first_touch_credit,
        case when touch_position = touch_count then 1.0 else 0.0 end as last_touch_credit,
        1.0 / touch_count as linear_credit,
        decay_weight / sum(decay_weight) over (partition by conversion_id) as time_decay_credit,
        case
            when touch_count = 1 then 1.0
            when touch_count = 2 then 0.5
            when touch_position = 1 then {{ settings.position_based_first }}
            when touch_position = touch_count then {{ settings.position_based_last }}
            else
                (1.0 - {{ settings.position_based_first }} - {{ settings.position_based_last }})
                / (touch_count - 2)
        end as position_based_credit
    from positioned

)

select
    conversion_id || '|' || touchpoint_id as credit_id,
    conversion_id,
    conversion_type,
    profile_id,
    converted_at,
    touchpoint_id,
    touch_type,
    touched_at,
    channel,
    touch_source,
    campaign,
    touch_position,
    touch_count,
    days_before_conversion,
    {{ attribution_columns(
        'cast({m}_credit as numeric(18, 6)) as {m}_credit, '
        ~ 'cast({m}_credit * revenue_eur as numeric(18, 2)) as {m}_revenue_eur'
    ) }}
from credited
