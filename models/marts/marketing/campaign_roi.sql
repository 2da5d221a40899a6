-- Return on each campaign's spend under every attribution model: purchase revenue credited to
-- the campaign (attribution_by_channel) against what it cost (stg_ads__campaign_costs, in
-- EUR), per campaign and, as campaign '(all)', per channel. A campaign that cost money and
-- earned nothing shows ROAS 0; one without recorded costs shows revenue and no ROAS.

with

attributed as (

    select
        channel,
        campaign,
        lower(campaign) as campaign_key,
        {{ attribution_columns('{m}_conversions, {m}_revenue_eur') }}
    from {{ ref('attribution_by_channel') }}
    where conversion_type = 'purchase' and channel != 'unattributed'

),

costs as (

    select * from {{ ref('stg_ads__campaign_costs') }}
    where amount is not null

),

rates as (

    select * from {{ ref('currency_rates') }}

),

spend as (

    select
        costs.channel,
        lower(coalesce(costs.campaign, '(none)')) as campaign_key,
        max(coalesce(costs.campaign, '(none)')) as campaign,
        round(sum(costs.amount * rates.eur_per_unit), 2) as spend_eur
    from costs
    left join rates on costs.currency = rates.currency
    group by costs.channel, lower(coalesce(costs.campaign, '(none)'))

),

campaigns as (

    select
        coalesce(attributed.channel, spend.channel) as channel,
        coalesce(attributed.campaign, spend.campaign) as campaign,
        spend.spend_eur,
        {{ attribution_columns(
            'coalesce(attributed.{m}_conversions, 0) as {m}_conversions, '
            ~ 'coalesce(attributed.{m}_revenue_eur, 0) as {m}_revenue_eur'
        ) }}
    from attributed
    full outer join spend
        on attributed.channel = spend.channel and attributed.campaign_key = spend.campaign_key

),

channels as (

    select
        channel,
        '(all)' as campaign,
        sum(spend_eur) as spend_eur,
        {{ attribution_columns(
            'sum({m}_conversions) as {m}_conversions, sum({m}_revenue_eur) as {m}_revenue_eur'
        ) }}
    from campaigns
    group by channel

),

combined as (

    select * from campaigns
    union all
    select * from channels

)

select
    channel,
    campaign,
    spend_eur,
    {{ attribution_columns(
        '{m}_conversions, {m}_revenue_eur, '
        ~ 'case when spend_eur > 0 then round({m}_revenue_eur / spend_eur, 2) end as {m}_roas, '
        ~ 'case when spend_eur > 0 then round(({m}_revenue_eur - spend_eur) / spend_eur, 3) end'
        ~ ' as {m}_roi'
    ) }}
from combined
