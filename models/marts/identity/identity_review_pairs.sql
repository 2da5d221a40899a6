-- Record pairs a human should look at: probable matches not linked automatically (below
-- var `cdp_match_threshold`, or given names disagreeing) whose records sit in different profiles.

with

matches as (

    select * from {{ ref('int_identity_matches') }}

),

assignments as (

    select * from {{ ref('int_profile_assignments') }}

)

select
    matches.record_key_l,
    matches.record_key_r,
    left_profile.profile_id as profile_id_l,
    right_profile.profile_id as profile_id_r,
    matches.match_probability,
    matches.agreed_fields,
    matches.disagreed_fields,
    case
        when matches.match_probability < {{ var('cdp_match_threshold') }} then 'below threshold'
        else 'given names disagree'
    end as review_reason
from matches
inner join assignments as left_profile on matches.record_key_l = left_profile.record_key
inner join assignments as right_profile on matches.record_key_r = right_profile.record_key
where
    left_profile.profile_id <> right_profile.profile_id
    and matches.match_probability >= {{ var('cdp_match_review_threshold') }}
