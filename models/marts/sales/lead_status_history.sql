-- Every lead-status change, from the CRM and from the CDP's lead workflow (assigned to a rep by
-- routing, accepted or rejected by the rep, reassigned after a breached SLA), with the status
-- before it, who changed it and why, and how long the lead stayed, for sales ops to audit.

with

history as (

    select * from {{ ref('stg_crm__lead_status_history') }}

),

records as (

    select * from {{ ref('customer_profile_records') }}
    where source = 'crm'

),

tasks as (

    select * from {{ ref('lead_tasks') }}

),

crm_changes as (

    select
        history.change_id,
        history.contact_id,
        history.lead_status,
        history.changed_by,
        history.changed_at,
        cast(null as {{ dbt.type_string() }}) as reason,
        'crm' as recorded_in
    from history

),

workflow_changes as (

    select
        tasks.task_id || ':assigned' as change_id,
        tasks.contact_id,
        'Assigned' as lead_status,
        'CDP lead routing' as changed_by,
        tasks.created_at as changed_at,
        tasks.routing_rule || ' -> ' || tasks.owner_name || ', grade ' || tasks.grade
        || ', due ' || cast(tasks.due_at as {{ dbt.type_string() }}) as reason,
        'cdp' as recorded_in
    from tasks
    union all
    select
        tasks.task_id || ':decided' as change_id,
        tasks.contact_id,
        case when tasks.status = 'accepted' then 'SAL' else 'Rejected' end as lead_status,
        tasks.decided_by as changed_by,
        tasks.decided_at as changed_at,
        tasks.decision_reason as reason,
        'cdp' as recorded_in
    from tasks
    where tasks.status in ('accepted', 'rejected')
    union all
    select
        tasks.task_id || ':breached' as change_id,
        tasks.contact_id,
        'SLA breached' as lead_status,
        'CDP lead workflow' as changed_by,
        tasks.breached_at as changed_at,
        'not accepted or rejected by ' || tasks.owner_name || ' within the grade ' || tasks.grade
        || ' SLA' as reason,
        'cdp' as recorded_in
    from tasks
    where tasks.status = 'breached'

),

changes as (

    select * from crm_changes
    union all
    select * from workflow_changes

),

sequenced as (

    select
        *,
        lag(lead_status) over (partition by contact_id order by changed_at, change_id)
            as previous_status,
        lead(changed_at) over (partition by contact_id order by changed_at, change_id)
            as next_changed_at
    from changes

)

select
    sequenced.change_id,
    sequenced.contact_id,
    records.profile_id,
    sequenced.previous_status,
    sequenced.lead_status,
    sequenced.changed_by,
    sequenced.changed_at,
    sequenced.reason,
    sequenced.recorded_in,
    sequenced.next_changed_at as left_status_at,
    {{ days_between('sequenced.changed_at', 'sequenced.next_changed_at') }} as days_in_status
from sequenced
left join records on sequenced.contact_id = records.source_record_id
