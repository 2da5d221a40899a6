-- Custom identifier kinds of the declared systems; a kind two systems declare gets the
-- stricter rules of the two.

with

kinds as (

    select * from {{ source('declared', 'identifier_kinds') }}

)

select
    identifier_kind,
    min(normalization) as normalization,
    bool_and(is_merge_key) as is_merge_key,
    min(max_per_profile) as max_per_profile,
    min(priority) as priority,
    max(description) as description
from kinds
group by identifier_kind
