-- What lead scoring looks at per CRM lead: behaviour (visits, contact page, forms, email
-- clicks) and fit (role, company size and industry, country). Company data comes from the CRM
-- account, else from firmographics enrichment of the email domain.

with

contacts as (

    select * from {{ ref('stg_crm__contacts') }}

),

records as (

    select * from {{ ref('int_profile_records') }}

),

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

firmographics as (

    select * from {{ ref('stg_enrichment__companies') }}

),

engagement as (

    select * from {{ ref('int_profile_engagement') }}

),

visits as (

    select
        profile_id,
        count(case when started_at >= {{ cdp_now() }} - interval '90 days' then 1 end)
            as visits_last_90_days,
        count(*) as visits,
        coalesce(sum(page_views), 0) as page_views,
        coalesce(sum(contact_page_views), 0) as contact_page_views,
        coalesce(sum(form_submissions), 0) as form_submissions
    from {{ ref('int_web_sessions') }}
    where profile_id is not null
    group by profile_id

)

select
    contacts.contact_id,
    records.profile_id,
    contacts.first_name,
    contacts.last_name,
    contacts.email,
    contacts.job_title,
    contacts.country_code,
    contacts.lead_source,
    contacts.lead_status,
    contacts.account_id,
    accounts.owner_name as account_owner_name,
    coalesce(accounts.account_name, firmographics.company_name) as company_name,
    coalesce(accounts.employee_count, firmographics.employee_count) as employee_count,
    coalesce(accounts.industry, firmographics.industry) as industry,
    coalesce(engagement.web_events_last_30_days, 0) as web_events_last_30_days,
    coalesce(cast(visits.visits_last_90_days as integer), 0) as visits_last_90_days,
    coalesce(cast(visits.contact_page_views as integer), 0) as contact_page_views,
    coalesce(cast(visits.form_submissions as integer), 0) as form_submissions,
    coalesce(cast(visits.visits as integer), 0) as visits,
    coalesce(cast(visits.page_views as integer), 0) as page_views,
    coalesce(engagement.emails_sent, 0) as emails_received,
    coalesce(engagement.emails_opened, 0) as email_opens,
    coalesce(engagement.emails_clicked, 0) as email_clicks,
    coalesce(engagement.has_unsubscribed, false) as has_unsubscribed
from contacts
left join records on records.source = 'crm' and contacts.contact_id = records.source_record_id
left join accounts on contacts.account_id = accounts.account_id
left join firmographics
    on {{ dbt.split_part('contacts.email', "'@'", 2) }} = firmographics.email_domain
left join engagement on records.profile_id = engagement.profile_id
left join visits on records.profile_id = visits.profile_id
