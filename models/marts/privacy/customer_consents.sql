-- The consent that counts per profile, purpose and channel: the latest statement from any
-- system, with where it came from. An unsubscribe in any system after an opt-in revokes it.

with

ranked as (

    select
        *,
        row_number() over (
            partition by profile_id, purpose, channel
            order by stated_at desc, is_granted asc, statement_id asc
        ) as recency_rank
    from {{ ref('int_consent_statements') }}

)

select
    {{ dbt.hash("profile_id || '|' || purpose || '|' || channel") }} as consent_id,
    profile_id,
    purpose,
    channel,
    is_granted,
    statement,
    source as source_system,
    source_record_id,
    stated_at
from ranked
where recency_rank = 1
