-- Messages to reps for the webhook sync: a lead routed to them (who the lead is, why it scored,
-- why it went to them, its grade and by when to accept or reject it), and a task of theirs that
-- breached its SLA (the lead has gone to another rep). New rows are new notifications.

with

assignments as (

    select * from {{ ref('lead_assignments') }}
    where owner_name is not null

),

tasks as (

    select * from {{ ref('lead_tasks') }}

),

features as (

    select * from {{ ref('int_lead_features') }}

),

reps as (

    select * from {{ ref('sales_reps') }}

),

assigned as (

    select
        {{ dbt.hash("assignments.contact_id || '|' || assignments.owner_name") }}
            as notification_id,
        'assigned' as notification_kind,
        assignments.owner_name as rep_name,
        assignments.owner_email as rep_email,
        assignments.contact_id,
        assignments.profile_id,
        assignments.task_id,
        assignments.grade,
        assignments.due_at,
        assignments.lead_score,
        assignments.score_reasons,
        assignments.routing_rule,
        assignments.territory,
        assignments.routed_at,
        cast(null as {{ dbt.type_string() }}) as reassigned_to
    from assignments

),

breaches as (

    select
        {{ dbt.hash("tasks.task_id || '|sla_breached'") }} as notification_id,
        'sla_breached' as notification_kind,
        tasks.owner_name as rep_name,
        reps.rep_email,
        tasks.contact_id,
        tasks.profile_id,
        tasks.task_id,
        tasks.grade,
        tasks.due_at,
        tasks.lead_score,
        assignments.score_reasons,
        tasks.routing_rule,
        assignments.territory,
        tasks.created_at as routed_at,
        case
            when assignments.owner_name != tasks.owner_name then assignments.owner_name
        end as reassigned_to
    from tasks
    left join reps on tasks.owner_name = reps.rep_name
    left join assignments on tasks.contact_id = assignments.contact_id
    where tasks.status = 'breached'

),

notifications as (

    select * from assigned
    union all
    select * from breaches

)

select
    notifications.notification_id,
    notifications.notification_kind,
    notifications.rep_name,
    notifications.rep_email,
    notifications.contact_id,
    notifications.profile_id,
    features.first_name,
    features.last_name,
    features.email,
    features.company_name,
    features.job_title,
    features.country_code,
    notifications.task_id,
    notifications.grade,
    notifications.due_at,
    notifications.lead_score,
    notifications.score_reasons,
    notifications.routing_rule,
    notifications.territory,
    notifications.routed_at,
    notifications.reassigned_to
from notifications
inner join features on notifications.contact_id = features.contact_id
