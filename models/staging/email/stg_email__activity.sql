{{ config(
    materialized=incremental_materialization(),
    unique_key='activity_id',
    incremental_strategy=incremental_strategy_for_target(),
    post_hook="{{ delete_rows_gone_from(source('email', 'activity'), 'activity_id') }}",
) }}

with

source as (

    select * from {{ source('email', 'activity') }}
    {{ loaded_since_last_run() }}

),

renamed as (

    select
        activity_id,
        subscriber_id,
        {{ normalize_email('email') }} as email,
        nullif(campaign_id, '') as campaign_id,
        nullif(campaign_name, '') as campaign_name,
        lower(activity_type) as activity_type,
        url as clicked_url,
        {{ iso_to_utc('occurred_at') }} as occurred_at,
        _loaded_at as loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('renamed', 'activity_id', 'loaded_at desc, occurred_at desc nulls last') }}

)

select * from deduplicated
