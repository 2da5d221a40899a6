-- Campaign costs per day with the channel a visit from the same campaign gets (macro
-- marketing_channel over the medium and the platform), so costs meet attributed revenue.

with

source as (

    select * from {{ source('ads', 'campaign_costs') }}

),

renamed as (

    select
        cost_id,
        cast(cost_date as date) as cost_date,
        lower(trim(platform)) as platform,
        lower(trim(medium)) as medium,
        {{ marketing_channel('lower(trim(medium))', 'lower(trim(platform))', 'null') }}
            as channel,
        trim(campaign) as campaign,
        cast(cost as decimal(12, 2)) as amount,
        upper(trim(currency)) as currency,
        _loaded_at as loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('renamed', 'cost_id', [
        'loaded_at desc', 'amount desc nulls last'
    ]) }}

)

select * from deduplicated
