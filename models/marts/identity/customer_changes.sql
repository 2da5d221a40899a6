{{ config(
    materialized=incremental_materialization(),
    unique_key='change_id',
    incremental_strategy=incremental_strategy_for_target(),
) }}

-- Every change of a golden-record attribute: old and new value, when, and the source system and
-- record that caused it. The record of processing a data-protection officer asks for.
-- Incremental: a run reads the history of the values the snapshot recorded since the newest
-- change this model holds, and adds their changes.

with

snapshot_versions as (

    select * from {{ ref('customer_attribute_provenance_snapshot') }}

),

{% if is_incremental() %}

    last_run as (

        select coalesce(max(changed_at), cast('1900-01-01' as timestamp)) as changed_at
        from {{ this }}

    ),

    recorded_since as (

        select distinct snapshot_versions.provenance_id
        from snapshot_versions
        inner join last_run on snapshot_versions.dbt_valid_from > last_run.changed_at

    ),

{% endif %}

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
    from snapshot_versions
    {%- if is_incremental() %}
    where provenance_id in (select recorded_since.provenance_id from recorded_since)
    {%- endif %}

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
