{{ profile_mart_config() }}

-- The golden customer record: one row per profile, each attribute chosen by its survivorship
-- rule (see customer_attribute_provenance for where every value came from). Browsers never tied
-- to a person are profiles too, with is_identified false.

with

refreshed_profiles as (

    {{ profiles_to_refresh() }}

),

provenance as (

    select provenance.*
    from {{ ref('customer_attribute_provenance') }} as provenance
    inner join refreshed_profiles on provenance.profile_id = refreshed_profiles.profile_id

),

records as (

    select * from {{ ref('int_identity_records') }}

),

profile_records as (

    select
        profile_records.*,
        records.crm_lead_status,
        records.crm_owner_name
    from {{ ref('customer_profile_records') }} as profile_records
    inner join refreshed_profiles on profile_records.profile_id = refreshed_profiles.profile_id
    inner join records on profile_records.record_key = records.record_key

),

attributes as (

    select
        profile_id,
        max(case when attribute = 'first_name' then attribute_value end) as first_name,
        max(case when attribute = 'last_name' then attribute_value end) as last_name,
        max(case when attribute = 'email' then attribute_value end) as email,
        max(case when attribute = 'phone' then attribute_value end) as phone,
        max(case when attribute = 'address' then record_key end) as address_record_key,
        max(case when attribute = 'country_code' then attribute_value end) as country_code,
        max(case when attribute = 'birth_date' then attribute_value end) as birth_date,
        max(case when attribute = 'company_name' then attribute_value end) as company_name
    from provenance
    group by profile_id

),

emails as (

    select
        profile_id,
        {{ distinct_list('attribute_value') }} as all_emails
    from {{ ref('int_customer_attribute_values') }}
    where
        attribute = 'email'
        and profile_id in (select refreshed_profiles.profile_id from refreshed_profiles)
    group by profile_id

),

lifecycle as (

    select
        profile_id,
        min(first_seen_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(*) as record_count,
        {{ distinct_list('source') }} as sources,
        max(case when source = 'shop' then 1 else 0 end) = 1 as has_shop_account,
        max(case when source = 'loyalty' then 1 else 0 end) = 1 as has_loyalty_card,
        max(case when source = 'email' then 1 else 0 end) = 1 as is_on_email_list,
        max(case when source = 'crm' then 1 else 0 end) = 1 as is_in_crm,
        max(profile_updated_at) as profile_updated_at
    from profile_records
    group by profile_id

),

crm_status as (

    select
        profile_id,
        max(crm_lead_status) as crm_lead_status,
        max(crm_owner_name) as crm_owner_name
    from profile_records
    where source = 'crm'
    group by profile_id

)

select
    lifecycle.profile_id,
    coalesce(
        attributes.email is not null or attributes.phone is not null
        or attributes.last_name is not null, false
    ) as is_identified,
    attributes.first_name,
    attributes.last_name,
    trim(coalesce(attributes.first_name, '') || ' ' || coalesce(attributes.last_name, ''))
        as full_name,
    attributes.email,
    emails.all_emails,
    attributes.phone,
    address_record.street,
    address_record.postal_code,
    address_record.city,
    attributes.country_code,
    cast(attributes.birth_date as date) as birth_date,
    attributes.company_name,
    crm_status.crm_lead_status,
    crm_status.crm_owner_name,
    lifecycle.has_shop_account,
    lifecycle.has_loyalty_card,
    lifecycle.is_on_email_list,
    lifecycle.is_in_crm,
    lifecycle.sources,
    lifecycle.record_count,
    lifecycle.first_seen_at,
    lifecycle.last_seen_at,
    lifecycle.profile_updated_at
from lifecycle
left join attributes on lifecycle.profile_id = attributes.profile_id
left join emails on lifecycle.profile_id = emails.profile_id
left join records as address_record on attributes.address_record_key = address_record.record_key
left join crm_status on lifecycle.profile_id = crm_status.profile_id
