-- What marketing is credited for: purchases (online and in store, with their EUR revenue) and
-- leads that became sales opportunities (no revenue yet).

with

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

opportunities as (

    select
        'opportunity:' || contact_id as conversion_id,
        profile_id,
        'opportunity' as conversion_type,
        opportunity_at as converted_at,
        0 as revenue_eur
    from {{ ref('int_lead_stages') }}
    where opportunity_at is not null and profile_id is not null

)

select * from purchases
union all
select * from opportunities
