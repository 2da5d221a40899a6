with

source as (

    select * from {{ source('loyalty', 'purchases') }}

),

renamed as (

    select
        purchase_id,
        upper({{ regexp_replace_all('card_number', '[^0-9A-Za-z]') }}) as card_number,
        store_id,
        cast(amount as decimal(12, 2)) as amount,
        upper(currency) as currency,
        cast(items as integer) as item_count,
        {{ local_to_utc('purchased_at') }} as purchased_at,
        _loaded_at as loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('renamed', 'purchase_id', [
        'loaded_at desc', 'purchased_at desc nulls last', 'amount desc nulls last',
        'item_count desc nulls last'
    ]) }}

)

select * from deduplicated
