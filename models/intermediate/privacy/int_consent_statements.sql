-- Every consent statement any system holds about a person, for a purpose and a channel: opt-ins
-- and opt-outs from the email tool, unsubscribe clicks, the shop's marketing checkbox and
-- newsletter forms, the website's consent events, and the consent columns of systems declared
-- in YAML. customer_consents keeps the latest per profile, purpose and channel.

with

assignments as (

    select * from {{ ref('int_profile_assignments') }}

),

subscribers as (

    select
        'email:' || subscriber_id as record_key,
        'email' as source,
        subscriber_id as source_record_id,
        'email_marketing' as purpose,
        'email' as channel,
        -- consent must be explicit: an unreadable consent value grants nothing
        coalesce(subscription_status = 'subscribed' and has_marketing_consent, false)
            as is_granted,
        coalesce(consent_at, updated_at) as stated_at,
        'list status ' || subscription_status as statement
    from {{ ref('stg_email__subscribers') }}

),

unsubscribes as (

    select
        'email:' || subscriber_id as record_key,
        'email' as source,
        activity_id as source_record_id,
        'email_marketing' as purpose,
        'email' as channel,
        false as is_granted,
        occurred_at as stated_at,
        'unsubscribe link' as statement
    from {{ ref('stg_email__activity') }}
    where activity_type = 'unsubscribe'

),

shop_checkbox as (

    select
        'shop:' || cast(customer_id as {{ dbt.type_string() }}) as record_key,
        'shop' as source,
        cast(customer_id as {{ dbt.type_string() }}) as source_record_id,
        'email_marketing' as purpose,
        'email' as channel,
        accepts_marketing as is_granted,
        accepts_marketing_stated_at as stated_at,
        'checkout marketing checkbox' as statement
    from {{ ref('stg_shop__customers') }}
    where accepts_marketing is not null

),

newsletter_forms as (

    select
        'web:' || anonymous_id as record_key,
        'web' as source,
        event_id as source_record_id,
        'email_marketing' as purpose,
        'email' as channel,
        true as is_granted,
        occurred_at as stated_at,
        'newsletter form' as statement
    from {{ ref('stg_web__events') }}
    where event_name = 'form_submit' and form_name = 'newsletter'

),

consent_events as (

    -- Segment's consent event: one statement per category the var maps to a purpose
    {%- for category, target in var('cdp_consent_categories', {}).items() %}
    {%- if not loop.first %}
    union all
    {%- endif %}
    select
        'web:' || anonymous_id as record_key,
        'web' as source,
        event_id as source_record_id,
        '{{ target.purpose }}' as purpose,
        '{{ target.channel }}' as channel,
        {{ json_field('consent_preferences', category) }} = 'true' as is_granted,
        occurred_at as stated_at,
        'consent preference {{ category }}' as statement
    from {{ ref('stg_web__events') }}
    where {{ json_field('consent_preferences', category) }} in ('true', 'false')
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as record_key,
        cast(null as {{ dbt.type_string() }}) as source,
        cast(null as {{ dbt.type_string() }}) as source_record_id,
        cast(null as {{ dbt.type_string() }}) as purpose,
        cast(null as {{ dbt.type_string() }}) as channel,
        cast(null as boolean) as is_granted,
        cast(null as timestamp) as stated_at,
        cast(null as {{ dbt.type_string() }}) as statement
    where false
    {%- endfor %}

),

declared as (

    select
        record_key,
        source,
        source_record_id,
        purpose,
        channel,
        is_granted,
        stated_at,
        statement
    from {{ ref('stg_declared__consent_statements') }}
    where is_granted is not null

),

statements as (

    select * from subscribers
    union all
    select * from unsubscribes
    union all
    select * from shop_checkbox
    union all
    select * from newsletter_forms
    union all
    select * from consent_events
    union all
    select * from declared

)

select
    {{ dbt.hash("statements.source || ':' || statements.source_record_id || ':' || statements.statement") }}
        as statement_id,
    assignments.profile_id,
    statements.purpose,
    statements.channel,
    statements.is_granted,
    statements.statement,
    statements.source,
    statements.source_record_id,
    statements.stated_at
from statements
inner join assignments on statements.record_key = assignments.record_key
