{{ config(
    materialized=incremental_materialization(),
    unique_key='event_id',
    incremental_strategy=incremental_strategy_for_target(),
    post_hook="{{ delete_rows_gone_from(source('web', 'events'), 'event_id') }}",
) }}

with

source as (

    select * from {{ source('web', 'events') }}
    {{ loaded_since_last_run() }}

),

renamed as (

    select
        event_id,
        -- Segment's API takes a user id without a browser (server-side calls): those events
        -- count as one browser per user
        coalesce(
            nullif(trim(anonymous_id), ''), 'user:' || nullif(trim(user_id), '')
        ) as anonymous_id,
        nullif(trim(user_id), '') as shop_customer_id,
        type as event_type,
        event as event_name,
        {{ normalize_email(json_field('traits', 'email')) }} as email,
        -- Segment's reserved traits are firstName and lastName
        {{ normalize_name(
            'coalesce(' ~ json_field('traits', 'first_name') ~ ', '
            ~ json_field('traits', 'firstName') ~ ')'
        ) }} as first_name,
        {{ normalize_name(
            'coalesce(' ~ json_field('traits', 'last_name') ~ ', '
            ~ json_field('traits', 'lastName') ~ ')'
        ) }} as last_name,
        {{ json_field('traits', 'form') }} as form_name,
        -- the visitor's consent choice, on the consent event only (others carry a copy)
        case
            when type = 'track' and event = '{{ var("cdp_consent_event") }}'
                then {{ json_field('context', 'consent.categoryPreferences') }}
        end as consent_preferences,
        {{ json_field('context', 'page.path') }} as page_path,
        nullif({{ json_field('context', 'page.referrer') }}, '') as referrer,
        lower({{ json_field('context', 'campaign.source') }}) as utm_source,
        lower({{ json_field('context', 'campaign.medium') }}) as utm_medium,
        lower({{ json_field('context', 'campaign.name') }}) as utm_campaign,
        {{ json_field('context', 'device.type') }} as device_type,
        {{ normalize_country(json_field('context', 'geo.country')) }} as geo_country_code,
        {{ json_field('context', 'geo.city') }} as geo_city,
        {{ json_field('context', 'locale') }} as browser_locale,
        {{ iso_to_utc(adapter.quote('timestamp')) }} as occurred_at,
        _loaded_at as loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('renamed', 'event_id', 'loaded_at desc, occurred_at desc nulls last') }}

)

select * from deduplicated
