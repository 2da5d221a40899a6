with

source as (

    select * from {{ source('crm', 'lead_status_history') }}

),

renamed as (

    select
        change_id,
        contact_id,
        lead_status,
        changed_by,
        {{ local_to_utc('changed_at') }} as changed_at,
        _loaded_at as loaded_at
    from source

),

latest as (

    {{ latest_per_key('renamed', 'change_id', 'loaded_at desc, changed_at desc nulls last') }}

)

select * from latest
