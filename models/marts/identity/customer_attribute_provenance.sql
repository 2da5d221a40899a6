-- For every golden-record value: which system and record it came from, when that system saw
-- it, and the survivorship rule (var `cdp_survivorship`) that chose it over the other candidates.

{{ profile_mart_config() }}

{%- set survivorship = var('cdp_survivorship') %}

with

refreshed_profiles as (

    {{ profiles_to_refresh() }}

),

candidates as (

    select
        attribute_values.*,
        count(*) over (
            partition by
                attribute_values.profile_id,
                attribute_values.attribute,
                attribute_values.attribute_value
        ) as value_frequency
    from {{ ref('int_customer_attribute_values') }} as attribute_values
    inner join refreshed_profiles on attribute_values.profile_id = refreshed_profiles.profile_id

),

ruled as (

    select
        *,
        case attribute
            {%- for attribute, spec in survivorship.items() %}
                when '{{ attribute }}' then '{{ spec["rule"] }}'
            {%- endfor %}
            else 'most_recent'
        end as survivorship_rule,
        case attribute
            {%- for attribute, spec in survivorship.items() if spec.get('sources') %}
                when '{{ attribute }}' then case source
                    {%- for source in spec['sources'] %}
                        when '{{ source }}' then {{ loop.index }}
                    {%- endfor %}
                    else 99
                end
            {%- endfor %}
            else 99
        end as source_rank
    from candidates

),

ranked as (

    select
        *,
        row_number() over (
            partition by profile_id, attribute
            order by
                case when survivorship_rule = 'source_priority' then source_rank else 0 end,
                case when survivorship_rule = 'most_frequent' then -value_frequency else 0 end,
                observed_at desc,
                record_key asc,
                -- one record can offer two values (a CRM phone and mobile): never leave it open
                attribute_value asc
        ) as candidate_rank
    from ruled

),

distinct_values as (

    select
        profile_id,
        attribute,
        count(distinct attribute_value) as candidate_values
    from candidates
    group by profile_id, attribute

)

select
    {{ dbt.hash("ranked.profile_id || '|' || ranked.attribute") }} as provenance_id,
    ranked.profile_id,
    ranked.attribute,
    ranked.attribute_value,
    ranked.source as source_system,
    ranked.source_record_id,
    ranked.record_key,
    ranked.observed_at,
    ranked.survivorship_rule,
    distinct_values.candidate_values,
    ranked.profile_updated_at
from ranked
inner join distinct_values
    on ranked.profile_id = distinct_values.profile_id and ranked.attribute = distinct_values.attribute
where ranked.candidate_rank = 1
