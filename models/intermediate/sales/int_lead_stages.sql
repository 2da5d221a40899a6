-- Each CRM lead with the first time it entered every funnel stage, from the CRM's status
-- history. A stage skipped on the way to a later one counts as entered when the later one was.


with

contacts as (

    select * from {{ ref('stg_crm__contacts') }}

),

history as (

    select * from {{ ref('stg_crm__lead_status_history') }}

),

records as (

    select * from {{ ref('int_profile_records') }}
    where source = 'crm'

),

entered as (

    select
        contact_id,
        min(case when lead_status = 'MQL' then changed_at end) as mql_at,
        min(case when lead_status = 'SAL' then changed_at end) as sal_at,
        min(case when lead_status = 'SQL' then changed_at end) as sql_at,
        min(case when lead_status = 'Opportunity' then changed_at end) as opportunity_at,
        min(case when lead_status = 'Customer' then changed_at end) as customer_at,
        min(case when lead_status = 'Unqualified' then changed_at end) as unqualified_at
    from history
    group by contact_id

)

select
    contacts.contact_id,
    records.profile_id,
    contacts.account_id,
    contacts.owner_name,
    contacts.lead_status,
    coalesce(contacts.lead_source, '(unknown)') as lead_source,
    contacts.created_at as lead_at,
    coalesce(
        entered.mql_at, entered.sal_at, entered.sql_at, entered.opportunity_at, entered.customer_at
    ) as mql_at,
    coalesce(entered.sal_at, entered.sql_at, entered.opportunity_at, entered.customer_at) as sal_at,
    coalesce(entered.sql_at, entered.opportunity_at, entered.customer_at) as sql_at,
    coalesce(entered.opportunity_at, entered.customer_at) as opportunity_at,
    entered.customer_at,
    entered.unqualified_at
from contacts
left join entered on contacts.contact_id = entered.contact_id
left join records on contacts.contact_id = records.source_record_id
