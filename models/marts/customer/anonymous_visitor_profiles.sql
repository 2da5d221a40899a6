-- What is known about visitors who have not identified themselves yet: where they come from,
-- on which device, through which channel and at what time of day, for personalization and
-- lookalike audiences before the first login or form.

with

visitors as (

    select profile_id from {{ ref('customers') }}
    where not is_identified

),

sessions as (

    select
        sessions.*,
        extract(hour from {{ utc_to_local('sessions.started_at') }}) as local_hour,
        row_number() over (
            partition by sessions.profile_id order by sessions.started_at, sessions.session_id
        ) as visit_number
    from {{ ref('int_web_sessions') }} as sessions
    inner join visitors on sessions.profile_id = visitors.profile_id

),

first_visits as (

    select * from sessions
    where visit_number = 1

),

summarized as (

    select
        profile_id,
        count(distinct anonymous_id) as browser_count,
        count(*) as session_count,
        cast(sum(page_views) as integer) as page_views,
        min(started_at) as first_visit_at,
        max(ended_at) as last_visit_at,
        {{ most_frequent('geo_country_code') }} as country_code,
        {{ most_frequent('geo_city') }} as city,
        {{ most_frequent('device_type') }} as device_type,
        {{ most_frequent('channel') }} as most_frequent_channel,
        {{ most_frequent(
            "case when local_hour < 6 then 'night' when local_hour < 12 then 'morning'"
            ~ " when local_hour < 18 then 'afternoon' else 'evening' end"
        ) }} as preferred_time_of_day,
        count(case when landing_page like '/produkte%' then 1 end) > 0 as viewed_products
    from sessions
    group by profile_id

)

select
    summarized.profile_id,
    summarized.browser_count,
    summarized.session_count,
    summarized.page_views,
    summarized.first_visit_at,
    summarized.last_visit_at,
    summarized.country_code,
    summarized.city,
    summarized.device_type,
    first_visits.referrer as first_referrer,
    first_visits.channel as first_channel,
    first_visits.utm_campaign as first_campaign,
    summarized.most_frequent_channel,
    summarized.preferred_time_of_day,
    summarized.viewed_products
from summarized
inner join first_visits on summarized.profile_id = first_visits.profile_id
