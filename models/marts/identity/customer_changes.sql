-- Every change of a golden-record attribute: old and new value, when, and the source system and
-- record that caused it. The record of processing a data-protection officer asks for.

with

versions as (

    select
        profile_id,
        attribute,
        attribute_value,
        source_system,
        source_record_id,
        survivorship_rule,
        dbt_valid_from,
        lag(attribute_value) over (
            partition by provenance_id order by dbt_valid_from
        ) as old_value,
        row_number() over (partition by provenance_id order by dbt_valid_from) as version_number
    from {{ ref('customer_attribute_provenance_snapshot') }}

)

select
    {{ dbt.hash("profile_id || '|' || attribute || '|' || cast(dbt_valid_from as " ~ dbt.type_string() ~ ")") }}
        as change_id,
    profile_id,
    attribute,
    old_value,
    attribute_value as new_value,
    case when version_number = 1 then 'set' else 'changed' end as change_type,
    dbt_valid_from as changed_at,
    source_system,
    source_record_id,
    survivorship_rule
from versions
where version_number = 1 or old_value is distinct from attribute_value
