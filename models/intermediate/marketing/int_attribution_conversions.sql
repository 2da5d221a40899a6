-- What marketing is credited for: purchases (online and in store, with their EUR revenue) and
-- leads that became sales opportunities, valued at the deal's amount in EUR (the CRM's
-- opportunities; a lead that reached the Opportunity status without a deal record counts with
-- no value).

with

rates as (

    select * from {{ ref('currency_rates') }}

),

purchases as (

    select
        channel || ':' || transaction_id as conversion_id,
        profile_id,
        'purchase' as conversion_type,
        transacted_at as converted_at,
        amount_eur as revenue_eur
    from {{ ref('int_customer_transactions') }}
    where is_revenue

),

stages as (

    select * from {{ ref('int_lead_stages') }}
    where opportunity_at is not null and profile_id is not null

),

deals as (

    select * from {{ ref('stg_crm__opportunities') }}

),

valued_deals as (

    select
        'opportunity:' || deals.opportunity_id as conversion_id,
        stages.profile_id,
        'opportunity' as conversion_type,
        coalesce(deals.created_at, stages.opportunity_at) as converted_at,
        round(deals.amount * rates.eur_per_unit, 2) as revenue_eur
    from deals
    inner join stages on deals.contact_id = stages.contact_id
    left join rates on deals.currency = rates.currency

),

unrecorded_deals as (

    select
        'opportunity:' || stages.contact_id as conversion_id,
        stages.profile_id,
        'opportunity' as conversion_type,
        stages.opportunity_at as converted_at,
        0 as revenue_eur
    from stages
    where stages.contact_id not in (
        select deals.contact_id from deals
        where deals.contact_id is not null
    )

)

select * from purchases
union all
select * from valued_deals
union all
select * from unrecorded_deals
