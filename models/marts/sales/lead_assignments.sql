-- Marketing-qualified leads routed to a sales rep, once: a lead keeps its rep on later runs
-- (incremental). Leads of a CRM account go to the account owner; the others to the active reps
-- of their country's territory, least loaded first, never above a rep's capacity of open leads.
-- Leads no rep has room for wait as queued and are routed on a later run. A routed lead is a
-- task for its rep, due within its grade's SLA (var cdp_lead_workflow); when the rep neither
-- accepts nor rejects it in time, the next run gives it to the least loaded other rep of its
-- territory with room (sla_reassigned), at most max_reassignments times; breached leads beyond
-- the reps' room stay with their rep until a later run finds room.
{%- set workflow = var('cdp_lead_workflow') %}

{#- SLAs run on the wall clock: rebuilt once a due time passed, even with inputs unchanged -#}
{{ config(
    materialized=incremental_materialization(),
    unique_key='contact_id',
    incremental_strategy=incremental_strategy_for_target(),
    on_schema_change='append_new_columns',
    meta={'cdp_rebuild': {'after_times_in': 'due_at'}},
) }}

with

scores as (

    select * from {{ ref('lead_scores') }}

),

features as (

    select * from {{ ref('int_lead_features') }}

),

reps as (

    select * from {{ ref('sales_reps') }}
    where is_active

),

territories as (

    select * from {{ ref('sales_territories') }}

),

decisions as (

    select * from {{ ref('stg_lead_workflow__decisions') }}

),

previous as (

    {%- if is_incremental() %}
    select
        contact_id,
        owner_name,
        first_queued_at,
        territory,
        {{ column_or_null(this, 'due_at', 'timestamp') }} as due_at,
        coalesce({{ column_or_null(this, 'assignment_number', 'integer') }}, 1)
            as assignment_number
    from {{ this }}
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as contact_id,
            cast(null as {{ dbt.type_string() }}) as owner_name,
            cast(null as timestamp) as first_queued_at,
            cast(null as {{ dbt.type_string() }}) as territory,
            cast(null as timestamp) as due_at,
            cast(null as integer) as assignment_number
        where 1 = 0
    {%- endif %}

),

breached as (

    -- Tasks past their due time that nobody accepted or rejected, of leads still with sales.
    select
        previous.contact_id,
        previous.owner_name as previous_owner_name,
        previous.territory,
        previous.assignment_number,
        scores.profile_id,
        scores.lead_score,
        scores.score_reasons
    from previous
    inner join scores on previous.contact_id = scores.contact_id
    left join decisions
        on decisions.task_id = {{ lead_task_id(
            'previous.contact_id', 'previous.owner_name', 'previous.assignment_number'
        ) }}
    where
        previous.owner_name is not null
        and previous.due_at < {{ current_utc() }}
        and decisions.task_id is null
        and previous.assignment_number <= {{ workflow.max_reassignments }}
        and scores.lead_status in ('New', 'Open', 'In Progress', 'MQL')

),

routable as (

    select
        scores.contact_id,
        scores.profile_id,
        scores.lead_score,
        scores.score_reasons,
        features.account_owner_name,
        coalesce(territories.territory, 'international') as territory
    from scores
    inner join features on scores.contact_id = features.contact_id
    left join territories on features.country_code = territories.country_code
    where
        scores.is_marketing_qualified
        and scores.lead_status in ('New', 'Open', 'In Progress', 'MQL')
        and scores.contact_id not in (
            select previous.contact_id from previous
            where previous.owner_name is not null
        )

),

open_leads as (

    select
        previous.owner_name,
        count(*) as lead_count
    from previous
    inner join scores on previous.contact_id = scores.contact_id
    where
        previous.owner_name is not null
        and scores.lead_status not in ({{ sql_list(var('cdp_routing_closed_statuses')) }})
    group by previous.owner_name

),

to_account_owners as (

    select
        routable.*,
        routable.account_owner_name as owner_name,
        'account_owner' as routing_rule
    from routable
    inner join reps on routable.account_owner_name = reps.rep_name

),

rep_loads as (

    select
        reps.rep_name,
        reps.territory,
        reps.capacity,
        coalesce(open_leads.lead_count, 0)
        + (
            select count(*) from to_account_owners
            where to_account_owners.owner_name = reps.rep_name
        ) as current_load
    from reps
    left join open_leads on reps.rep_name = open_leads.owner_name

),

free_slots as (

    -- One row per lead a rep can still take; ranking slots by their number fills the least
    -- loaded reps first, then goes round the territory one lead each.
    select
        rep_loads.rep_name,
        rep_loads.territory,
        row_number() over (
            partition by rep_loads.territory
            order by slot_numbers.generated_number, rep_loads.rep_name
        ) as slot_rank
    from rep_loads
    inner join ({{ dbt.generate_series(1000) }}) as slot_numbers
        on
            rep_loads.current_load < slot_numbers.generated_number
            and rep_loads.capacity >= slot_numbers.generated_number

),

waiting as (

    select
        routable.*,
        row_number() over (
            partition by routable.territory
            order by routable.lead_score desc, routable.contact_id asc
        ) as queue_rank
    from routable
    where routable.contact_id not in (
        select to_account_owners.contact_id from to_account_owners
    )

),

to_territories as (

    select
        waiting.contact_id,
        waiting.profile_id,
        waiting.lead_score,
        waiting.score_reasons,
        waiting.territory,
        free_slots.rep_name as owner_name,
        case
            when free_slots.rep_name is null then 'queued_over_capacity'
            else 'territory_round_robin'
        end as routing_rule
    from waiting
    left join free_slots
        on waiting.territory = free_slots.territory and waiting.queue_rank = free_slots.slot_rank

),

loads_after_routing as (

    select
        rep_loads.rep_name,
        rep_loads.territory,
        rep_loads.capacity,
        rep_loads.current_load + (
            select count(*) from to_territories
            where to_territories.owner_name = rep_loads.rep_name
        ) as current_load
    from rep_loads

),

reassignment_candidates as (

    -- Each breached lead's other reps of its territory with room, least loaded first.
    select
        breached.*,
        loads_after_routing.rep_name,
        row_number() over (
            partition by breached.contact_id
            order by loads_after_routing.current_load, loads_after_routing.rep_name
        ) as rep_rank,
        count(*) over (partition by breached.contact_id) as rep_count,
        loads_after_routing.capacity - loads_after_routing.current_load as room,
        dense_rank() over (
            partition by breached.territory
            order by breached.lead_score desc, breached.contact_id asc
        ) as lead_rank
    from breached
    inner join loads_after_routing
        on
            breached.territory = loads_after_routing.territory
            and breached.previous_owner_name != loads_after_routing.rep_name
            and loads_after_routing.current_load < loads_after_routing.capacity

),

picked_reps as (

    -- Round robin over the candidates, so a run's breaches do not all go to one rep.
    select
        *,
        row_number() over (
            partition by rep_name order by lead_score desc, contact_id asc
        ) as taken_rank
    from reassignment_candidates
    where rep_rank = mod(lead_rank - 1, rep_count) + 1

),

reassigned as (

    -- A rep takes no more than their room; the other breached leads wait for the next run.
    select
        contact_id,
        profile_id,
        lead_score,
        score_reasons,
        territory,
        rep_name as owner_name,
        'sla_reassigned' as routing_rule,
        assignment_number + 1 as assignment_number,
        previous_owner_name
    from picked_reps
    where taken_rank <= room

),

routed as (

    select
        contact_id,
        profile_id,
        lead_score,
        score_reasons,
        territory,
        owner_name,
        routing_rule,
        1 as assignment_number,
        cast(null as {{ dbt.type_string() }}) as previous_owner_name
    from to_account_owners
    union all
    select
        contact_id,
        profile_id,
        lead_score,
        score_reasons,
        territory,
        owner_name,
        routing_rule,
        1 as assignment_number,
        cast(null as {{ dbt.type_string() }}) as previous_owner_name
    from to_territories
    union all
    select * from reassigned

)

select
    routed.contact_id,
    routed.profile_id,
    routed.owner_name,
    reps.rep_email as owner_email,
    routed.territory,
    routed.routing_rule,
    routed.lead_score,
    routed.score_reasons,
    coalesce(previous.first_queued_at, {{ current_utc() }}) as first_queued_at,
    case when routed.owner_name is not null then {{ current_utc() }} end as routed_at,
    cast(routed.assignment_number as integer) as assignment_number,
    routed.previous_owner_name,
    case
        when routed.owner_name is not null
            then {{ lead_task_id('routed.contact_id', 'routed.owner_name', 'routed.assignment_number') }}
    end as task_id,
    {{ lead_grade('routed.lead_score') }} as grade,
    case
        when routed.owner_name is not null
            then {{ dbt.dateadd('hour', lead_sla_hours('routed.lead_score'), current_utc()) }}
    end as due_at
from routed
left join reps on routed.owner_name = reps.rep_name
left join previous on routed.contact_id = previous.contact_id
