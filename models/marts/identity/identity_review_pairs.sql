-- Record pairs a human should look at: probable matches not linked automatically (below
-- var `cdp_match_threshold`) whose records sit in different profiles and that nobody decided
-- on yet (cdp identity review accept / reject).

with

matches as (

    select * from {{ ref('int_identity_matches') }}

),

assignments as (

    select * from {{ ref('int_profile_assignments') }}

),

decided as (

    select
        record_key_a,
        record_key_b
    from {{ ref('stg_identity__decisions') }}
    where action in ('merge', 'keep_apart')

)

select
    {{ dbt.hash("matches.record_key_l || '|' || matches.record_key_r") }} as review_pair_id,
    matches.record_key_l,
    matches.record_key_r,
    left_profile.profile_id as profile_id_l,
    right_profile.profile_id as profile_id_r,
    matches.match_probability,
    matches.agreed_fields,
    matches.disagreed_fields,
    case
        when matches.match_probability < {{ var('cdp_match_threshold') }} then 'below threshold'
        else 'held apart: together they would hold more ids of a kind than a profile may'
    end as review_reason
from matches
inner join assignments as left_profile on matches.record_key_l = left_profile.record_key
inner join assignments as right_profile on matches.record_key_r = right_profile.record_key
left join decided
    on matches.record_key_l = decided.record_key_a and matches.record_key_r = decided.record_key_b
where
    decided.record_key_a is null
    and left_profile.profile_id <> right_profile.profile_id
    and matches.match_probability >= {{ var('cdp_match_review_threshold') }}
