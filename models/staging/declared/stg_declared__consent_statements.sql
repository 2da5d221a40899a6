-- Consent the declared systems hold: per record and consent column, the latest version's value,
-- granted when it reads true and withdrawn when it reads false; a value that reads neither states
-- nothing (the staging test on is_granted counts them).

with

statements as (

    select * from {{ source('declared', 'consent_statements') }}

),

typed as (

    select
        source || ':' || source_record_id as record_key,
        source,
        source_record_id,
        purpose,
        channel,
        {{ to_boolean('consent_value') }} as is_granted,
        statement,
        coalesce(cast(stated_at as timestamp), loaded_at) as stated_at,
        loaded_at
    from statements

),

latest as (

    {{ latest_per_key('typed', 'record_key, statement', ['stated_at desc', 'loaded_at desc']) }}

)

select
    {{ dbt.hash("record_key || '|' || statement") }} as statement_id,
    record_key,
    source,
    source_record_id,
    purpose,
    channel,
    is_granted,
    statement,
    stated_at,
    loaded_at
from latest
