-- Every lead-status change from the CRM with the status before it and how long the lead
-- stayed, for sales ops to audit the funnel.

with

history as (

    select * from {{ ref('stg_crm__lead_status_history') }}

),

records as (

    select * from {{ ref('customer_profile_records') }}
    where source = 'crm'

),

sequenced as (

    select
        *,
        lag(lead_status) over (partition by contact_id order by changed_at, change_id)
            as previous_status,
        lead(changed_at) over (partition by contact_id order by changed_at, change_id)
            as next_changed_at
    from history

)

select
    sequenced.change_id,
    sequenced.contact_id,
    records.profile_id,
    sequenced.previous_status,
    sequenced.lead_status,
    sequenced.changed_by,
    sequenced.changed_at,
    sequenced.next_changed_at as left_status_at,
    {{ days_between('sequenced.changed_at', 'sequenced.next_changed_at') }} as days_in_status
from sequenced
left join records on sequenced.contact_id = records.source_record_id
