-- Every identifier observed on every source record: its own id, emails, phones, and for web
-- cookies the shop account they logged into. Judged (blocklisted, shared) in
-- int_identifier_quality.

with

records as (

    select * from {{ ref('int_identity_records') }}

),

logins as (

    select distinct
        'web:' || anonymous_id as record_key,
        'web' as source,
        anonymous_id as source_record_id,
        cast(shop_customer_id as {{ dbt.type_string() }}) as identifier_value,
        occurred_at as observed_at
    from {{ ref('stg_web__events') }}
    where shop_customer_id is not null

),

own_ids as (

    select
        record_key,
        source,
        source_record_id,
        case source
            when 'crm' then 'crm_contact_id'
            when 'shop' then 'shop_customer_id'
            when 'email' then 'email_subscriber_id'
            when 'loyalty' then 'loyalty_card'
            when 'support' then 'support_ticket_id'
            when 'reviews' then 'review_id'
            when 'web' then 'cookie_id'
            else source || '_record_id'
        end as identifier_kind,
        source_record_id as identifier_value,
        first_seen_at as observed_at
    from records

),

emails as (

    select
        record_key,
        source,
        source_record_id,
        'email' as identifier_kind,
        email as identifier_value,
        observed_at
    from records
    where email is not null

),

phones as (

    select
        record_key,
        source,
        source_record_id,
        'phone' as identifier_kind,
        phone as identifier_value,
        observed_at
    from records
    where phone is not null
    union
    select
        record_key,
        source,
        source_record_id,
        'phone' as identifier_kind,
        mobile_phone as identifier_value,
        observed_at
    from records
    where mobile_phone is not null

),

shop_logins as (

    select
        record_key,
        source,
        source_record_id,
        'shop_customer_id' as identifier_kind,
        identifier_value,
        observed_at
    from logins

),

declared_ids as (

    select
        record_key,
        source,
        source_record_id,
        identifier_kind,
        identifier_value,
        loaded_at as observed_at
    from {{ ref('stg_declared__person_identifiers') }}

),

unioned as (

    select * from own_ids
    union all
    select * from emails
    union all
    select * from phones
    union all
    select * from shop_logins
    union all
    select * from declared_ids

)

select
    {{ dbt.hash("record_key || '|' || identifier_kind || '|' || identifier_value") }}
        as identifier_observation_id,
    record_key,
    source,
    source_record_id,
    identifier_kind,
    identifier_value,
    min(observed_at) as observed_at
from unioned
group by record_key, source, source_record_id, identifier_kind, identifier_value
