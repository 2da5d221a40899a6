{{ config(
    materialized=incremental_materialization(),
    unique_key='record_key',
    incremental_strategy=incremental_strategy_for_target(),
    post_hook="{{ delete_rows_gone_from(ref('int_identity_components'), 'record_key') }}",
) }}

-- Stable profile ids. Each record's profile comes from its connected component; a component
-- keeps the id most of its records had before (a merge keeps the id holding most records, a
-- split leaves the id with the part holding most of its records). Components with no earlier id
-- get one derived from their first record, so a full rebuild on the same data gives the same ids.
-- Incremental runs assign only the components walked since the last run (a record's profile
-- id is its old component's, so all records of an old profile are among them).

with

components as (

    select * from {{ ref('int_identity_components') }}
    {%- if is_incremental() %}
    where computed_at > (
        select coalesce(max(assigned_at), cast('1900-01-01' as timestamp)) from {{ this }}
    )
    {%- endif %}

),

previous as (

    {% if is_incremental() %}
        select
            record_key,
            profile_id as prior_profile_id
        from {{ this }}
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as record_key,
            cast(null as {{ dbt.type_string() }}) as prior_profile_id
        where false
    {% endif %}

),

votes as (

    select
        components.component_key,
        previous.prior_profile_id,
        count(*) as record_count
    from components
    inner join previous on components.record_key = previous.record_key
    group by components.component_key, previous.prior_profile_id

),

ranked_votes as (

    select
        component_key,
        prior_profile_id,
        record_count,
        row_number() over (
            partition by prior_profile_id order by record_count desc, component_key asc
        ) as rank_for_profile
    from votes

),

survivors as (

    select
        component_key,
        prior_profile_id as profile_id,
        row_number() over (
            partition by component_key order by record_count desc, prior_profile_id asc
        ) as rank_for_component
    from ranked_votes
    where rank_for_profile = 1

),

first_record_previous as (

    select
        components.component_key,
        previous.prior_profile_id
    from components
    left join previous on components.record_key = previous.record_key
    where components.record_key = components.component_key

)

select
    components.record_key,
    coalesce(
        survivors.profile_id,
        'p_' || substr(
            {{ dbt.hash("components.component_key || ':' || coalesce(first_record_previous.prior_profile_id, '')") }},
            1, 16
        )
    ) as profile_id,
    components.component_key,
    components.component_size,
    previous.prior_profile_id,
    {{ dbt.current_timestamp() }} as assigned_at
from components
left join survivors
    on components.component_key = survivors.component_key and survivors.rank_for_component = 1
left join first_record_previous on components.component_key = first_record_previous.component_key
left join previous on components.record_key = previous.record_key
