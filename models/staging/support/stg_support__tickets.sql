with

source as (

    select * from {{ source('support', 'tickets') }}

),

requester_named as (

    -- The desk writes either "First Last" or "Last, First".
    select
        *,
        case
            when requester_name like '%,%'
                then
                    trim(split_part(requester_name, ',', 2)) || ' '
                    || trim(split_part(requester_name, ',', 1))
            else requester_name
        end as requester_first_last
    from source

),

renamed as (

    select
        ticket_id,
        {{ normalize_email('requester_email') }} as requester_email,
        {{ normalize_name('requester_first_last') }} as requester_name,
        {{ normalize_phone('requester_phone', 'null') }} as requester_phone,
        subject,
        case priority
            when 'Niedrig' then 'low'
            when 'Normal' then 'normal'
            when 'Hoch' then 'high'
            when 'Kritisch' then 'critical'
        end as priority,
        case status
            when 'offen' then 'open'
            when 'wartend' then 'pending'
            when 'gelöst' then 'solved'
            when 'geschlossen' then 'closed'
        end as ticket_status,
        channel,
        {{ local_to_utc(parse_german_datetime('created_at')) }} as created_at,
        {{ local_to_utc(parse_german_datetime('updated_at')) }} as updated_at,
        _loaded_at as loaded_at
    from requester_named

),

latest as (

    {{ latest_per_key('renamed', 'ticket_id', [
        'updated_at desc nulls last', 'loaded_at desc', 'created_at desc nulls last'
    ]) }}

)

select * from latest
