-- The decision in force on each lead task: the latest recorded. Empty until a rep decides.

with

source as (

    {{ source_or_empty('lead_workflow', 'decisions', {
        'decision_id': dbt.type_string(),
        'task_id': dbt.type_string(),
        'contact_id': dbt.type_string(),
        'decision': dbt.type_string(),
        'reason': dbt.type_string(),
        'decided_by': dbt.type_string(),
        'decided_at': 'timestamp',
    }) }}

),

latest as (

    {{ latest_per_key('source', 'task_id', 'decided_at desc, decision_id desc') }}

)

select * from latest
