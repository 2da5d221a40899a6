-- Web events grouped into visits: a new session after 30 minutes without an event, as web
-- analytics tools count them. The landing event carries the visit's referrer and campaign;
-- the browser's profile comes along, so traits, attribution and lead scoring need no join.

with

events as (

    select
        *,
        lag(occurred_at) over (
            partition by anonymous_id order by occurred_at, event_id
        ) as previous_event_at
    from {{ ref('stg_web__events') }}

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
        max(case when is_session_start = 1 then geo_city end) as geo_city
    from numbered
    group by anonymous_id, session_number

)

select
    sessions.anonymous_id || '-' || cast(sessions.session_number as {{ dbt.type_string() }})
        as session_id,
    records.profile_id,
    sessions.*,
    {{ marketing_channel('sessions.utm_medium', 'sessions.utm_source', 'sessions.referrer') }}
        as channel
from sessions
left join {{ ref('customer_profile_records') }} as records
    on records.source = 'web' and sessions.anonymous_id = records.source_record_id
