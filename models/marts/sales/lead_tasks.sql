-- One task per lead routed to a rep: due within the SLA of the lead's grade, done when the rep
-- accepts (sales accepted lead) or rejects it (with a reason), breached when neither happened
-- in time (the lead then goes to another rep: a new task). Tasks of earlier owners are kept
-- (incremental), so the record of who had a lead when and what they did stays whole. Unworked
-- leads age: behaviour points halve every aging_half_life_days since the task was created.

{#- SLAs and aging run on the wall clock: rebuilt once a due time passed, and at least hourly
    (the aged score), even with inputs unchanged -#}
{{ config(
    materialized=incremental_materialization(),
    unique_key='task_id',
    incremental_strategy=incremental_strategy_for_target(),
    on_schema_change='append_new_columns',
    meta={'cdp_rebuild': {'after_times_in': 'due_at', 'every_hours': 1}},
) }}

{%- set workflow = var('cdp_lead_workflow') %}

with

assignments as (

    select * from {{ ref('lead_assignments') }}
    where task_id is not null

),

decisions as (

    select * from {{ ref('stg_lead_workflow__decisions') }}

),

scores as (

    select * from {{ ref('lead_scores') }}

),

current_tasks as (

    select
        task_id,
        contact_id,
        profile_id,
        owner_name,
        assignment_number,
        routing_rule,
        grade,
        lead_score,
        routed_at as created_at,
        due_at
    from assignments

),

previous as (

    {%- if is_incremental() %}
    select
        task_id,
        contact_id,
        profile_id,
        owner_name,
        assignment_number,
        routing_rule,
        grade,
        lead_score,
        created_at,
        due_at
    from {{ this }}
    where task_id not in (select current_tasks.task_id from current_tasks)
    {%- else %}
        select * from current_tasks
        where 1 = 0
    {%- endif %}

),

tasks as (

    select * from current_tasks
    union all
    select * from previous

),

worked as (

    select
        tasks.*,
        decisions.decision,
        decisions.reason as decision_reason,
        decisions.decided_by,
        decisions.decided_at,
        scores.lead_status,
        scores.behaviour_score,
        scores.fit_score,
        case
            when decisions.decision is not null then decisions.decision
            when tasks.due_at < {{ current_utc() }} then 'breached'
            when scores.lead_status not in ('New', 'Open', 'In Progress', 'MQL')
                then 'worked_in_crm'
            else 'open'
        end as status
    from tasks
    left join decisions on tasks.task_id = decisions.task_id
    left join scores on tasks.contact_id = scores.contact_id

)

select
    task_id,
    contact_id,
    profile_id,
    owner_name,
    cast(assignment_number as integer) as assignment_number,
    routing_rule,
    grade,
    lead_score,
    case
        when status in ('open', 'breached')
            then cast(round(
                coalesce(fit_score, 0)
                + coalesce(behaviour_score, 0) * power(
                    0.5,
                    {{ days_between('created_at', current_utc()) }}
                    / {{ workflow.aging_half_life_days }}
                )
            ) as integer)
        else lead_score
    end as aged_lead_score,
    status,
    created_at,
    due_at,
    case when status = 'breached' then due_at end as breached_at,
    decided_at,
    decided_by,
    decision_reason,
    case
        when decided_at is not null
            then round({{ days_between('created_at', 'decided_at') }} * 24, 2)
    end as hours_to_decision,
    case
        when decided_at is not null then decided_at <= due_at
        when status = 'breached' then false
    end as is_within_sla
from worked
