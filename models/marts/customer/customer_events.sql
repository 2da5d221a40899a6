{{ config(materialized='view') }}

-- Everything each customer did, across the source systems: the 360-degree view's timeline and
-- the access export read it.

select
    event_key,
    profile_id,
    source,
    source_record_id,
    occurred_at,
    kind,
    detail
from {{ ref('int_profile_events') }}
