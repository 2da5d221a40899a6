-- One row per source record that stands for a person, with the attributes identity matching and
-- the golden record use. record_key = '<source>:<source record id>'.

with

crm_contacts as (

    select
        'crm' as source,
        contacts.contact_id as source_record_id,
        contacts.first_name,
        contacts.last_name,
        contacts.email,
        contacts.phone,
        contacts.mobile_phone,
        contacts.street,
        contacts.postal_code,
        contacts.city,
        contacts.country_code,
        contacts.birth_date,
        accounts.account_name as company_name,
        contacts.lead_status as crm_lead_status,
        contacts.owner_name as crm_owner_name,
        contacts.created_at as first_seen_at,
        contacts.updated_at as observed_at
    from {{ ref('stg_crm__contacts') }} as contacts
    left join {{ ref('stg_crm__accounts') }} as accounts
        on contacts.account_id = accounts.account_id

),

shop_customers as (

    select
        'shop' as source,
        cast(customer_id as {{ dbt.type_string() }}) as source_record_id,
        first_name,
        last_name,
        email,
        phone,
        cast(null as {{ dbt.type_string() }}) as mobile_phone,
        street,
        postal_code,
        city,
        country_code,
        birth_date,
        cast(null as {{ dbt.type_string() }}) as company_name,
        cast(null as {{ dbt.type_string() }}) as crm_lead_status,
        cast(null as {{ dbt.type_string() }}) as crm_owner_name,
        created_at as first_seen_at,
        updated_at as observed_at
    from {{ ref('stg_shop__customers') }}

),

email_subscribers as (

    select
        'email' as source,
        subscriber_id as source_record_id,
        first_name,
        last_name,
        email,
        cast(null as {{ dbt.type_string() }}) as phone,
        cast(null as {{ dbt.type_string() }}) as mobile_phone,
        cast(null as {{ dbt.type_string() }}) as street,
        cast(null as {{ dbt.type_string() }}) as postal_code,
        cast(null as {{ dbt.type_string() }}) as city,
        cast(null as {{ dbt.type_string() }}) as country_code,
        cast(null as date) as birth_date,
        cast(null as {{ dbt.type_string() }}) as company_name,
        cast(null as {{ dbt.type_string() }}) as crm_lead_status,
        cast(null as {{ dbt.type_string() }}) as crm_owner_name,
        created_at as first_seen_at,
        updated_at as observed_at
    from {{ ref('stg_email__subscribers') }}

),

loyalty_cards as (

    select
        'loyalty' as source,
        card_number as source_record_id,
        first_name,
        last_name,
        email,
        phone,
        cast(null as {{ dbt.type_string() }}) as mobile_phone,
        cast(null as {{ dbt.type_string() }}) as street,
        postal_code,
        city,
        country_code,
        birth_date,
        cast(null as {{ dbt.type_string() }}) as company_name,
        cast(null as {{ dbt.type_string() }}) as crm_lead_status,
        cast(null as {{ dbt.type_string() }}) as crm_owner_name,
        issued_at as first_seen_at,
        issued_at as observed_at
    from {{ ref('stg_loyalty__cards') }}

),

support_tickets as (

    -- The desk keeps one name field: the last word is the family name.
    select
        'support' as source,
        ticket_id as source_record_id,
        {{ first_words('requester_name') }} as first_name,
        {{ last_word('requester_name') }} as last_name,
        requester_email as email,
        requester_phone as phone,
        cast(null as {{ dbt.type_string() }}) as mobile_phone,
        cast(null as {{ dbt.type_string() }}) as street,
        cast(null as {{ dbt.type_string() }}) as postal_code,
        cast(null as {{ dbt.type_string() }}) as city,
        cast(null as {{ dbt.type_string() }}) as country_code,
        cast(null as date) as birth_date,
        cast(null as {{ dbt.type_string() }}) as company_name,
        cast(null as {{ dbt.type_string() }}) as crm_lead_status,
        cast(null as {{ dbt.type_string() }}) as crm_owner_name,
        created_at as first_seen_at,
        updated_at as observed_at
    from {{ ref('stg_support__tickets') }}

),

reviews as (

    -- Review platforms show "Anna M.": an abbreviated family name is no family name.
    select
        'reviews' as source,
        review_id as source_record_id,
        {{ first_words('reviewer_name') }} as first_name,
        case
            when {{ last_word('reviewer_name') }} not like '%.' then {{ last_word('reviewer_name') }}
        end as last_name,
        reviewer_email as email,
        cast(null as {{ dbt.type_string() }}) as phone,
        cast(null as {{ dbt.type_string() }}) as mobile_phone,
        cast(null as {{ dbt.type_string() }}) as street,
        cast(null as {{ dbt.type_string() }}) as postal_code,
        cast(null as {{ dbt.type_string() }}) as city,
        cast(null as {{ dbt.type_string() }}) as country_code,
        cast(null as date) as birth_date,
        cast(null as {{ dbt.type_string() }}) as company_name,
        cast(null as {{ dbt.type_string() }}) as crm_lead_status,
        cast(null as {{ dbt.type_string() }}) as crm_owner_name,
        submitted_at as first_seen_at,
        submitted_at as observed_at
    from {{ ref('stg_reviews__reviews') }}

),

web_cookies as (

    -- A browser: identified by logins (shop account, email) and form submits (email, name).
    select
        'web' as source,
        anonymous_id as source_record_id,
        max(first_name) as first_name,
        max(last_name) as last_name,
        max(email) as email,
        cast(null as {{ dbt.type_string() }}) as phone,
        cast(null as {{ dbt.type_string() }}) as mobile_phone,
        cast(null as {{ dbt.type_string() }}) as street,
        cast(null as {{ dbt.type_string() }}) as postal_code,
        cast(null as {{ dbt.type_string() }}) as city,
        cast(null as {{ dbt.type_string() }}) as country_code,
        cast(null as date) as birth_date,
        cast(null as {{ dbt.type_string() }}) as company_name,
        cast(null as {{ dbt.type_string() }}) as crm_lead_status,
        cast(null as {{ dbt.type_string() }}) as crm_owner_name,
        min(occurred_at) as first_seen_at,
        max(occurred_at) as observed_at
    from {{ ref('stg_web__events') }}
    group by anonymous_id

),

declared_people as (

    -- Systems declared in YAML: the house number joins the street for the golden record; the
    -- matcher compares the two apart again.
    select
        source,
        source_record_id,
        first_name,
        last_name,
        email,
        phone,
        mobile_phone,
        nullif(trim(coalesce(street, '') || ' ' || coalesce(house_number, '')), '') as street,
        postal_code,
        city,
        country_code,
        birth_date,
        company_name,
        cast(null as {{ dbt.type_string() }}) as crm_lead_status,
        cast(null as {{ dbt.type_string() }}) as crm_owner_name,
        coalesce(created_at, loaded_at) as first_seen_at,
        coalesce(updated_at, loaded_at) as observed_at
    from {{ ref('stg_declared__person_records') }}

),

unioned as (

    select * from crm_contacts
    union all
    select * from shop_customers
    union all
    select * from email_subscribers
    union all
    select * from loyalty_cards
    union all
    select * from support_tickets
    union all
    select * from reviews
    union all
    select * from web_cookies
    union all
    select * from declared_people

)

select
    source || ':' || source_record_id as record_key,
    *,
    -- identity resolution recomputes only the profiles of records whose fingerprint changed
    {{ fingerprint([
        'first_name', 'last_name', 'email', 'phone', 'mobile_phone', 'street', 'postal_code',
        'city', 'country_code', 'birth_date', 'company_name', 'crm_lead_status',
        'crm_owner_name', 'first_seen_at', 'observed_at',
    ]) }} as record_fingerprint
from unioned
