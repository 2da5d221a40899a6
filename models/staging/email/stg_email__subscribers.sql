with

source as (

    select * from {{ source('email', 'subscribers') }}

),

renamed as (

    select
        subscriber_id,
        {{ normalize_email('email') }} as email,
        {{ normalize_name('first_name') }} as first_name,
        {{ normalize_name('last_name') }} as last_name,
        lower(language) as language_code,
        lower(status) as subscription_status,
        {{ to_boolean('consent_marketing') }} as has_marketing_consent,
        consent_source,
        {{ iso_to_utc('consent_at') }} as consent_at,
        {{ iso_to_utc('created_at') }} as created_at,
        {{ iso_to_utc('updated_at') }} as updated_at,
        _loaded_at as loaded_at
    from source

),

latest as (

    {{ latest_per_key('renamed', 'subscriber_id', [
        'updated_at desc nulls last', 'loaded_at desc', 'created_at desc nulls last',
        'consent_at desc nulls last', 'has_marketing_consent desc nulls last'
    ]) }}

)

select * from latest
