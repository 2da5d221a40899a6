-- When each profile entered and left each audience (from the dbt snapshot of the memberships),
-- for journeys that start on entry and for answering "why did I get this email".

with

snapshot as (

    select * from {{ ref('audience_memberships_snapshot') }}

)

select
    dbt_scd_id as membership_period_id,
    audience,
    profile_id,
    dbt_valid_from as entered_at,
    dbt_valid_to as exited_at,
    dbt_valid_to is null as is_current_member
from snapshot
