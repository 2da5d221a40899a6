with

source as (

    select * from {{ source('reviews', 'reviews') }}

),

renamed as (

    select
        review_id,
        product_sku as sku,
        cast(rating as integer) as rating,
        title as review_title,
        {{ normalize_name('reviewer_name') }} as reviewer_name,
        {{ normalize_email('reviewer_email') }} as reviewer_email,
        {{ to_boolean('verified_purchase') }} as is_verified_purchase,
        {{ iso_to_utc('submitted_at') }} as submitted_at,
        _loaded_at as loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('renamed', 'review_id', [
        'loaded_at desc', 'submitted_at desc nulls last', 'rating desc nulls last',
        'is_verified_purchase desc nulls last'
    ]) }}

)

select * from deduplicated
