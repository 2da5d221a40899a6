-- Email and web engagement per profile, counted from its events: what customer traits show and
-- lead scoring weighs, computed once.

with

events as (

    select * from {{ ref('int_profile_events') }}
    where source in ('email', 'web')

)

select
    profile_id,
    count(case when source = 'email' and activity = 'send' then 1 end) as emails_sent,
    count(case when source = 'email' and activity = 'open' then 1 end) as emails_opened,
    count(case when source = 'email' and activity = 'click' then 1 end) as emails_clicked,
    count(case when source = 'email' and activity = 'unsubscribe' then 1 end) > 0
        as has_unsubscribed,
    max(case when source = 'email' then occurred_at end) as last_email_activity_at,
    count(case when source = 'web' then 1 end) as web_events,
    count(case when source = 'web' and activity = 'page' then 1 end) as page_views,
    count(
        case
            when source = 'web' and occurred_at >= {{ cdp_now() }} - interval '30 days' then 1
        end
    ) as web_events_last_30_days,
    max(case when source = 'web' then occurred_at end) as last_web_visit_at
from events
group by profile_id
