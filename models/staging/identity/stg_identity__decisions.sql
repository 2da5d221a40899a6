-- The decisions in force: the latest about each pair of records (merge or keep apart) and about
-- each detached record. Empty until someone decides.

with

source as (

    {{ source_or_empty('identity', 'decisions', {
        'decision_id': dbt.type_string(),
        'action': dbt.type_string(),
        'record_key_a': dbt.type_string(),
        'record_key_b': dbt.type_string(),
        'decided_by': dbt.type_string(),
        'decided_at': 'timestamp',
        'reason': dbt.type_string(),
    }) }}

),

keyed as (

    select
        *,
        case
            when action = 'detach' then 'detach:' || record_key_a
            else 'pair:' || record_key_a || '|' || record_key_b
        end as decision_subject
    from source

),

latest as (

    {{ latest_per_key('keyed', 'decision_subject', 'decided_at desc, decision_id desc') }}

)

select * from latest
