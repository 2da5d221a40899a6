-- What each profile prefers and what to offer it next: its top product categories and brands
-- by spend and its shoe and clothing sizes,
-- one product it has not bought yet that the buyers of its products also bought (or, without
-- such a product, the most bought one of its top category), how engaged it is compared with
-- everyone else, and the channel it uses most. Settings in var cdp_preferences.

{%- set settings = var('cdp_preferences') %}
{%- set points = settings.engagement_points %}

with

profiles as (

    select profile_id from {{ ref('customers') }}

),

purchases as (

    select * from {{ ref('int_profile_product_purchases') }}

),

events as (

    select * from {{ ref('int_profile_events') }}

),

tickets as (

    select
        ticket_id,
        {{ ticket_channel('channel') }} as contact_channel
    from {{ ref('stg_support__tickets') }}

),

as_of as (

    select as_of from {{ ref('int_data_as_of') }}

),

ranked_categories as (

    {{ ranked_by_spend('purchases', 'product_category') }}

),

ranked_brands as (

    {{ ranked_by_spend('purchases', 'brand') }}

),

top_categories as (

    select
        profile_id,
        max(case when spend_rank = 1 then product_category end) as top_category,
        max(case when spend_rank = 2 then product_category end) as second_category,
        max(case when spend_rank = 3 then product_category end) as third_category,
        count(*) as categories_bought
    from ranked_categories
    group by profile_id

),

top_brands as (

    select
        profile_id,
        max(case when spend_rank = 1 then brand end) as top_brand,
        max(case when spend_rank = 2 then brand end) as second_brand
    from ranked_brands
    group by profile_id

),

-- Sizes by the pieces bought in them, per size system: numbers (42, 42.5) are shoe sizes,
-- letters (XS to XXL) clothing sizes; others (32/34) are not compared.
sized as (

    select
        profile_id,
        most_bought_size as size,
        quantity,
        last_bought_at,
        case
            when {{ regex_matches('most_bought_size', '[0-9]{1,2}([.,]5)?') }} then 'shoe'
            when {{ regex_matches('most_bought_size', 'X{0,3}S|M|X{0,3}L|[2-5]XL') }}
                then 'clothing'
        end as size_system
    from purchases
    where most_bought_size is not null

),

ranked_sizes as (

    select
        profile_id,
        size_system,
        size,
        row_number() over (
            partition by profile_id, size_system
            order by sum(quantity) desc, max(last_bought_at) desc, size asc
        ) as size_rank
    from sized
    where size_system is not null
    group by profile_id, size_system, size

),

sizes as (

    select
        profile_id,
        max(case when size_system = 'shoe' then size end) as shoe_size,
        max(case when size_system = 'clothing' then size end) as clothing_size
    from ranked_sizes
    where size_rank = 1
    group by profile_id

),

-- each profile's newest products, the basket its co-purchases are counted from
baskets as (

    select
        profile_id,
        sku
    from (
        select
            profile_id,
            sku,
            row_number() over (
                partition by profile_id order by last_bought_at desc, sku asc
            ) as recency
        from purchases
    ) as ordered
    where recency <= {{ settings.basket_products }}

),

product_buyers as (

    select
        sku,
        count(*) as buyers
    from purchases
    group by sku

),

catalog as (

    select distinct
        sku,
        product_name,
        product_category
    from purchases

),

co_purchases as (

    select
        bought.sku as bought_sku,
        paired.sku as also_sku,
        count(*) as co_buyers
    from baskets as bought
    inner join baskets as paired
        on bought.profile_id = paired.profile_id and bought.sku != paired.sku
    group by bought.sku, paired.sku
    having count(*) >= {{ settings.co_purchase_min_buyers }}

),

-- "of the n profiles who bought A, k also bought B": confidence k / n
rules as (

    select
        co_purchases.bought_sku,
        co_purchases.also_sku,
        co_purchases.co_buyers,
        product_buyers.buyers,
        cast(co_purchases.co_buyers as {{ dbt.type_float() }})
        / product_buyers.buyers as confidence
    from co_purchases
    inner join product_buyers on co_purchases.bought_sku = product_buyers.sku

),

-- every rule in one order, best first: a profile's candidate is its best-ranked rule, found
-- by a grouped min over its rules instead of sorting all of them per profile
ranked_rules as (

    select
        bought_sku,
        also_sku,
        co_buyers,
        buyers,
        row_number() over (
            order by confidence desc, co_buyers desc, also_sku asc, bought_sku asc
        ) as rule_rank
    from rules

),

-- A profile's best rule from one of its products is among that product's first (products it
-- bought + 1) rules: only rules to a product it already bought are passed over. Joining every
-- rule of every basket product made this model the slowest of a 10M build (17 s).
rules_by_product as (

    select
        bought_sku,
        also_sku,
        rule_rank,
        row_number() over (partition by bought_sku order by rule_rank) as rank_for_product
    from ranked_rules

),

products_bought as (

    select
        profile_id,
        count(*) as products
    from purchases
    group by profile_id

),

best_rules as (

    select
        baskets.profile_id,
        min(rules_by_product.rule_rank) as rule_rank
    from baskets
    inner join products_bought on baskets.profile_id = products_bought.profile_id
    inner join rules_by_product
        on
            baskets.sku = rules_by_product.bought_sku
            and rules_by_product.rank_for_product <= products_bought.products + 1
    left join purchases as already_bought
        on baskets.profile_id = already_bought.profile_id and rules_by_product.also_sku = already_bought.sku
    where already_bought.sku is null
    group by baskets.profile_id

),

co_purchase_candidates as (

    select
        best_rules.profile_id,
        ranked_rules.bought_sku,
        ranked_rules.also_sku as sku,
        ranked_rules.co_buyers,
        ranked_rules.buyers
    from best_rules
    inner join ranked_rules on best_rules.rule_rank = ranked_rules.rule_rank

),

popular_in_category as (

    select
        catalog.product_category,
        catalog.sku,
        product_buyers.buyers,
        row_number() over (
            partition by catalog.product_category order by product_buyers.buyers desc, catalog.sku asc
        ) as popularity_rank
    from catalog
    inner join product_buyers on catalog.sku = product_buyers.sku
    where catalog.product_category is not null

),

popular_candidates as (

    select
        top_categories.profile_id,
        popular_in_category.sku,
        popular_in_category.buyers,
        row_number() over (
            partition by top_categories.profile_id
            order by popular_in_category.popularity_rank
        ) as candidate_rank
    from top_categories
    inner join popular_in_category
        on
            top_categories.top_category = popular_in_category.product_category
            -- the most bought few: enough unless a profile owns more of them than a basket holds
            and popular_in_category.popularity_rank <= {{ settings.basket_products + 1 }}
    left join purchases as already_bought
        on top_categories.profile_id = already_bought.profile_id and popular_in_category.sku = already_bought.sku
    where already_bought.sku is null

),

recommendations as (

    select
        profiles.profile_id,
        coalesce(co_purchase.sku, popular.sku) as recommended_sku,
        case
            when co_purchase.sku is not null then 'co_purchase'
            when popular.sku is not null then 'popular_in_top_category'
        end as recommendation_basis,
        case
            when co_purchase.sku is not null
                then
                    'bought ' || bought.product_name || '; '
                    || cast(co_purchase.co_buyers as {{ dbt.type_string() }}) || ' of '
                    || cast(co_purchase.buyers as {{ dbt.type_string() }})
                    || ' who bought it also bought this'
            when popular.sku is not null
                then
                    'most bought in ' || top_categories.top_category || ' (buyers: '
                    || cast(popular.buyers as {{ dbt.type_string() }}) || ')'
        end as recommendation_reason
    from profiles
    left join co_purchase_candidates as co_purchase on profiles.profile_id = co_purchase.profile_id
    left join catalog as bought on co_purchase.bought_sku = bought.sku
    left join top_categories on profiles.profile_id = top_categories.profile_id
    left join popular_candidates as popular
        on profiles.profile_id = popular.profile_id and popular.candidate_rank = 1

),

-- every interaction a profile started, by channel: email opens and clicks, web visits and
-- shop orders (web), app screens (app), store purchases, support tickets by their channel
interactions as (

    select
        events.profile_id,
        events.occurred_at,
        case
            when events.source = 'email' and events.activity in ('open', 'click') then 'email'
            when events.source = 'web' and events.activity = 'screen' then 'app'
            when events.source in ('web', 'shop') then 'web'
            when events.source = 'loyalty' then 'store'
            when events.source = 'support' then tickets.contact_channel
        end as channel,
        case
            when events.source = 'email' and events.activity = 'open'
                then {{ points.email_open }}
            when events.source = 'email' and events.activity = 'click'
                then {{ points.email_click }}
            when events.source = 'web' and events.activity = 'screen' then {{ points.app }}
            when events.source = 'web' then {{ points.web }}
            when events.source in ('shop', 'loyalty') then {{ points.purchase }}
            else 0
        end as engagement_points
    from events
    left join tickets
        on events.source = 'support' and events.source_record_id = tickets.ticket_id
    cross join as_of
    where
        events.occurred_at <= as_of.as_of
        and events.occurred_at > as_of.as_of - interval '{{ settings.channel_days }} days'

),

channel_counts as (

    select
        profile_id,
        channel,
        count(*) as interactions,
        max(occurred_at) as last_interaction_at
    from interactions
    where channel is not null
    group by profile_id, channel

),

preferred_channels as (

    select
        profile_id,
        channel as preferred_channel,
        interactions as preferred_channel_interactions
    from (
        select
            profile_id,
            channel,
            interactions,
            row_number() over (
                partition by profile_id
                order by interactions desc, last_interaction_at desc, channel asc
            ) as channel_rank
        from channel_counts
    ) as ranked
    where channel_rank = 1

),

engagement as (

    select
        interactions.profile_id,
        sum(interactions.engagement_points) as engagement_points
    from interactions
    cross join as_of
    where interactions.occurred_at > as_of.as_of - interval '{{ settings.engagement_days }} days'
    group by interactions.profile_id
    having sum(interactions.engagement_points) > 0

),

engagement_scores as (

    select
        profile_id,
        engagement_points,
        {{ activity_share_score('engagement_points') }} as engagement_score
    from engagement

)

select
    profiles.profile_id,
    top_categories.top_category,
    top_categories.second_category,
    top_categories.third_category,
    coalesce(top_categories.categories_bought, 0) as categories_bought,
    top_brands.top_brand,
    top_brands.second_brand,
    sizes.shoe_size as preferred_shoe_size,
    sizes.clothing_size as preferred_clothing_size,
    recommendations.recommended_sku,
    recommended.product_name as recommended_product_name,
    recommended.product_category as recommended_product_category,
    recommendations.recommendation_basis,
    recommendations.recommendation_reason,
    coalesce(engagement_scores.engagement_score, 0) as engagement_score,
    coalesce(engagement_scores.engagement_points, 0) as engagement_points,
    preferred_channels.preferred_channel,
    coalesce(preferred_channels.preferred_channel_interactions, 0)
        as preferred_channel_interactions
from profiles
left join top_categories on profiles.profile_id = top_categories.profile_id
left join top_brands on profiles.profile_id = top_brands.profile_id
left join sizes on profiles.profile_id = sizes.profile_id
left join recommendations on profiles.profile_id = recommendations.profile_id
left join catalog as recommended on recommendations.recommended_sku = recommended.sku
left join engagement_scores on profiles.profile_id = engagement_scores.profile_id
left join preferred_channels on profiles.profile_id = preferred_channels.profile_id
