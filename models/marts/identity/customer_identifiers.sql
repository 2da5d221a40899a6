{{ profile_mart_config() }}

-- Every identifier of every customer profile, with the systems it was seen in.

with

refreshed_profiles as (

    {{ profiles_to_refresh() }}

)

select
    assignments.profile_id,
    identifiers.identifier_kind,
    identifiers.identifier_value,
    {{ distinct_list('identifiers.source') }} as sources,
    count(distinct identifiers.record_key) as record_count,
    min(identifiers.observed_at) as first_observed_at,
    bool_or(quality.is_blocklisted) as is_blocklisted,
    bool_or(quality.is_shared) as is_shared,
    max(refreshed_profiles.profile_updated_at) as profile_updated_at
from {{ ref('int_identifiers') }} as identifiers
inner join {{ ref('int_profile_assignments') }} as assignments
    on identifiers.record_key = assignments.record_key
inner join refreshed_profiles on assignments.profile_id = refreshed_profiles.profile_id
inner join {{ ref('int_identifier_quality') }} as quality
    on
        identifiers.identifier_kind = quality.identifier_kind
        and identifiers.identifier_value = quality.identifier_value
group by assignments.profile_id, identifiers.identifier_kind, identifiers.identifier_value
