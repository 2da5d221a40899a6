{{ config(
    materialized=incremental_materialization(unique_key_is_unique=false),
    unique_key='anonymous_id',
    incremental_strategy=incremental_strategy_for_target(),
    post_hook="{{ delete_rows_gone_from(ref('stg_web__events'), 'anonymous_id') }}",
) }}

-- Web events grouped into visits: a new session after 30 minutes without an event, as web
-- analytics tools count them. The landing event carries the visit's referrer and campaign;
-- the browser's profile comes along, so traits, attribution and lead scoring need no join.
-- Incremental: a run sessionizes again the browsers with events loaded since the last run and
-- those whose profile was recomputed; every other browser keeps its sessions.

with

web_profiles as (

    select
        source_record_id as anonymous_id,
        profile_id,
        profile_updated_at
    from {{ ref('int_profile_records') }}
    where source = 'web'

),

{% if is_incremental() %}

    refreshed_browsers as (

        select anonymous_id
        from {{ ref('stg_web__events') }}
        where loaded_at > (
            select coalesce(max(events_loaded_at), cast('1900-01-01' as timestamp))
            from {{ this }}
        )
        union
        select anonymous_id
        from web_profiles
        where profile_updated_at > (
            select coalesce(max(profile_updated_at), cast('1900-01-01' as timestamp))
            from {{ this }}
        )

    ),

{% endif %}

events as (

    select
        *,
        lag(occurred_at) over (
            partition by anonymous_id order by occurred_at, event_id
        ) as previous_event_at
    from {{ ref('stg_web__events') }}
    -- an event whose time did not parse (kept in raw) belongs to no visit
    where occurred_at is not null
    {%- if is_incremental() %}
        and anonymous_id in (select refreshed_browsers.anonymous_id from refreshed_browsers)
    {%- endif %}

),

session_starts as (

    select
        *,
        case
            when
                previous_event_at is null
                or occurred_at > previous_event_at + interval '30 minutes' then 1
            else 0
        end as is_session_start
    from events

),

numbered as (

    select
        *,
        sum(is_session_start) over (
            partition by anonymous_id order by occurred_at, event_id
            rows between unbounded preceding and current row
        ) as session_number
    from session_starts

),

sessions as (

    select
        anonymous_id,
        session_number,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as event_count,
        count(case when event_type = 'page' then 1 end) as page_views,
        count(case when event_type = 'track' and event_name = 'form_submit' then 1 end)
            as form_submissions,
        count(case when page_path = '/kontakt' then 1 end) as contact_page_views,
        max(case when is_session_start = 1 then page_path end) as landing_page,
        max(case when is_session_start = 1 then referrer end) as referrer,
        max(case when is_session_start = 1 then utm_source end) as utm_source,
        max(case when is_session_start = 1 then utm_medium end) as utm_medium,
        max(case when is_session_start = 1 then utm_campaign end) as utm_campaign,
        max(case when is_session_start = 1 then device_type end) as device_type,
        max(case when is_session_start = 1 then geo_country_code end) as geo_country_code,
        max(case when is_session_start = 1 then geo_city end) as geo_city,
        max(loaded_at) as events_loaded_at
    from numbered
    group by anonymous_id, session_number

)

select
    sessions.anonymous_id || '-' || cast(sessions.session_number as {{ dbt.type_string() }})
        as session_id,
    web_profiles.profile_id,
    sessions.*,
    {{ marketing_channel('sessions.utm_medium', 'sessions.utm_source', 'sessions.referrer') }}
        as channel,
    web_profiles.profile_updated_at
from sessions
left join web_profiles on sessions.anonymous_id = web_profiles.anonymous_id
