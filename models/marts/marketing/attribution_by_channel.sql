-- Conversions and revenue credited to each channel and campaign under each attribution model.
-- Conversions without a touch in the lookback window count as channel 'unattributed', so
-- every model adds up to the same totals.

with

credits as (

    select * from {{ ref('attribution_touchpoint_credits') }}

),

unattributed as (

    select
        conversions.conversion_type,
        'unattributed' as channel,
        '(none)' as campaign,
        {{ attribution_columns('1.0 as {m}_credit, conversions.revenue_eur as {m}_revenue_eur') }}
    from {{ ref('int_attribution_conversions') }} as conversions
    where not exists (
        select 1 from credits
        where credits.conversion_id = conversions.conversion_id
    )

),

all_credits as (

    select
        conversion_type,
        channel,
        coalesce(campaign, '(none)') as campaign,
        {{ attribution_columns('{m}_credit, {m}_revenue_eur') }}
    from credits
    union all
    select * from unattributed

)

select
    conversion_type,
    channel,
    campaign,
    {{ attribution_columns(
        'round(sum({m}_credit), 3) as {m}_conversions, '
        ~ 'round(sum({m}_revenue_eur), 2) as {m}_revenue_eur'
    ) }}
from all_credits
group by conversion_type, channel, campaign
