{{ profile_mart_config() }}

-- The profile spine: which source records make up each customer profile, with what later
-- models join records by (source, source_record_id). Incremental by profile; the mart
-- customer_profile_records shows it to consumers outside dbt.

with

refreshed_profiles as (

    {{ profiles_to_refresh() }}

)

select
    assignments.record_key,
    assignments.profile_id,
    records.source,
    records.source_record_id,
    records.first_seen_at,
    records.observed_at,
    assignments.assigned_at,
    refreshed_profiles.profile_updated_at
from {{ ref('int_profile_assignments') }} as assignments
inner join refreshed_profiles on assignments.profile_id = refreshed_profiles.profile_id
inner join {{ ref('int_identity_records') }} as records
    on assignments.record_key = records.record_key
