-- One message per lead routed to a rep, for the webhook sync that tells the rep: who the
-- lead is, why it scored, and why it was routed to them. New rows are new notifications.

with

assignments as (

    select * from {{ ref('lead_assignments') }}
    where owner_name is not null

),

features as (

    select * from {{ ref('int_lead_features') }}

)

select
    {{ dbt.hash("assignments.contact_id || '|' || assignments.owner_name") }} as notification_id,
    assignments.owner_name as rep_name,
    assignments.owner_email as rep_email,
    assignments.contact_id,
    assignments.profile_id,
    features.first_name,
    features.last_name,
    features.email,
    features.company_name,
    features.job_title,
    features.country_code,
    assignments.lead_score,
    assignments.score_reasons,
    assignments.routing_rule,
    assignments.territory,
    assignments.routed_at
from assignments
inner join features on assignments.contact_id = features.contact_id
