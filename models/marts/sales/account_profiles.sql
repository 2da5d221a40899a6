-- One row per CRM account for account-based marketing and sales: its contacts and the
-- customer profiles behind them, what they bought, the leads and open opportunities among
-- them, the value of their open and won deals, and how engaged and active on the website they
-- are. Engagement and intent are
-- shares among accounts, so they read the same on any data's volume.

with

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

contacts as (

    select * from {{ ref('stg_crm__contacts') }}
    where account_id is not null

),

records as (

    select * from {{ ref('int_profile_records') }}
    where source = 'crm'

),

traits as (

    select * from {{ ref('customer_traits') }}

),

preferences as (

    select * from {{ ref('customer_preferences') }}

),

lead_scores as (

    select * from {{ ref('lead_scores') }}

),

deals as (

    select * from {{ ref('stg_crm__opportunities') }}
    where account_id is not null

),

rates as (

    select * from {{ ref('currency_rates') }}

),

deal_facts as (

    select
        deals.account_id,
        sum(case when deals.stage = 'Open' then deals.amount * rates.eur_per_unit end)
            as open_pipeline_eur,
        sum(case when deals.stage = 'Won' then deals.amount * rates.eur_per_unit end)
            as won_deals_eur
    from deals
    left join rates on deals.currency = rates.currency
    group by deals.account_id

),

contact_facts as (

    select
        contacts.account_id,
        count(*) as contact_count,
        count(case when contacts.lead_status = 'Opportunity' then 1 end)
            as open_opportunities,
        count(case when lead_scores.is_marketing_qualified then 1 end)
            as marketing_qualified_contacts,
        max(lead_scores.lead_score) as highest_lead_score
    from contacts
    left join lead_scores on contacts.contact_id = lead_scores.contact_id
    group by contacts.account_id

),

-- a profile counts once per account, however many of its contacts it merges
account_profiles as (

    select distinct
        contacts.account_id,
        records.profile_id
    from contacts
    inner join records on contacts.contact_id = records.source_record_id

),

profile_facts as (

    select
        account_profiles.account_id,
        count(*) as profile_count,
        count(case when traits.purchase_count > 0 then 1 end) as customer_count,
        coalesce(sum(traits.revenue_eur), 0) as revenue_eur,
        coalesce(sum(traits.web_events_last_30_days), 0) as web_events_last_30_days,
        coalesce(sum(preferences.engagement_points), 0) as engagement_points,
        max(traits.last_seen_at) as last_seen_at
    from account_profiles
    left join traits on account_profiles.profile_id = traits.profile_id
    left join preferences on account_profiles.profile_id = preferences.profile_id
    group by account_profiles.account_id

),

scored as (

    select
        account_id,
        {{ activity_share_score('engagement_points') }} as engagement_score,
        {{ activity_share_score('web_events_last_30_days') }} as intent_score
    from profile_facts

)

select
    accounts.account_id,
    accounts.account_name,
    accounts.email_domain,
    accounts.industry,
    accounts.employee_count,
    accounts.country_code,
    accounts.owner_name,
    coalesce(contact_facts.contact_count, 0) as contact_count,
    coalesce(profile_facts.profile_count, 0) as profile_count,
    coalesce(profile_facts.customer_count, 0) as customer_count,
    coalesce(profile_facts.revenue_eur, 0) as revenue_eur,
    coalesce(contact_facts.open_opportunities, 0) as open_opportunities,
    round(coalesce(deal_facts.open_pipeline_eur, 0), 2) as open_pipeline_eur,
    round(coalesce(deal_facts.won_deals_eur, 0), 2) as won_deals_eur,
    coalesce(contact_facts.marketing_qualified_contacts, 0) as marketing_qualified_contacts,
    contact_facts.highest_lead_score,
    coalesce(profile_facts.web_events_last_30_days, 0) as web_events_last_30_days,
    coalesce(scored.engagement_score, 0) as engagement_score,
    coalesce(scored.intent_score, 0) as intent_score,
    profile_facts.last_seen_at
from accounts
left join contact_facts on accounts.account_id = contact_facts.account_id
left join profile_facts on accounts.account_id = profile_facts.account_id
left join scored on accounts.account_id = scored.account_id
left join deal_facts on accounts.account_id = deal_facts.account_id
