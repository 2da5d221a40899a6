{{ config(severity='warn', meta={'dagster': {'ref': {'name': 'customer_identifiers'}}}) }}
-- Profiles holding more values of a kind than identity_identifier_rules.max_per_profile allows
-- (e.g. more than 4 emails) are probably over-merged: a warning for the review queue.
select
    identifiers.profile_id,
    identifiers.identifier_kind,
    count(*) as value_count,
    max(rules.max_per_profile) as allowed
from {{ ref('customer_identifiers') }} as identifiers
inner join {{ ref('identity_identifier_rules') }} as rules
    on identifiers.identifier_kind = rules.identifier_kind
group by identifiers.profile_id, identifiers.identifier_kind
having count(*) > max(rules.max_per_profile)
