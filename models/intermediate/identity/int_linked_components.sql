{{ config(
    materialized=incremental_materialization(),
    unique_key='record_key',
    incremental_strategy=incremental_strategy_for_target(),
    post_hook="{{ delete_rows_gone_from(ref('int_identity_records'), 'record_key') }}",
) }}

-- Connected components of the record graph, as the links make them (before the identifier
-- limits split them, int_identity_components): every record gets the smallest record key it is
-- linked to, directly or through others (macros/identity.sql); components stay small because
-- junk and shared identifiers do not link.
-- Incremental runs walk only the components holding a record that is new, gone, or whose
-- fingerprint (attributes, identifiers and their quality, links) changed: a new link changes
-- the fingerprints of both its records, so every other component is unchanged and kept.

{{ with_recursive() }}

records as (

    select
        record_key,
        record_fingerprint
    from {{ ref('int_identity_records') }}

),

edges as (

    select
        record_key_a,
        record_key_b
    from {{ ref('int_identity_edges') }}

),

links_per_record as (

    select
        record_key,
        {{ fingerprint_of_rows(['linked_key']) }} as linked_keys
    from (
        select
            record_key_a as record_key,
            record_key_b as linked_key
        from edges
        union
        select
            record_key_b as record_key,
            record_key_a as linked_key
        from edges
    ) as links
    group by record_key

),

identifiers_per_record as (

    select
        record_key,
        {{ fingerprint_of_rows([
            'identifier_kind', 'identifier_value', 'is_blocklisted', 'is_shared',
        ]) }} as identifier_fingerprints
    from {{ ref('int_identifiers_judged') }}
    group by record_key

),

fingerprinted as (

    select
        records.record_key,
        {{ fingerprint([
            'records.record_fingerprint',
            'identifiers_per_record.identifier_fingerprints',
            'links_per_record.linked_keys',
        ]) }} as graph_fingerprint
    from records
    left join identifiers_per_record on records.record_key = identifiers_per_record.record_key
    left join links_per_record on records.record_key = links_per_record.record_key

),

-- as of the last run (none on a full build: every record counts as new)
stored as (

    {% if is_incremental() %}
        select
            record_key,
            component_key,
            graph_fingerprint
        from {{ this }}
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as record_key,
            cast(null as {{ dbt.type_string() }}) as component_key,
            cast(null as {{ dbt.type_string() }}) as graph_fingerprint
        where false
    {% endif %}

),

changed as (

    select coalesce(fingerprinted.record_key, stored.record_key) as record_key
    from fingerprinted
    full outer join stored on fingerprinted.record_key = stored.record_key
    where
        fingerprinted.record_key is null
        or stored.record_key is null
        or fingerprinted.graph_fingerprint <> stored.graph_fingerprint

),

changed_components as (

    select distinct stored.component_key
    from stored
    inner join changed on stored.record_key = changed.record_key

),

walked_records as (

    select changed.record_key
    from changed
    inner join fingerprinted on changed.record_key = fingerprinted.record_key
    union
    select stored.record_key
    from stored
    inner join changed_components on stored.component_key = changed_components.component_key
    inner join fingerprinted on stored.record_key = fingerprinted.record_key

),

-- both ends of a link to a walked record are walked (see above)
walked_edges as (

    select edges.*
    from edges
    inner join walked_records on edges.record_key_a = walked_records.record_key

),

{{ connected_components('walked_records', 'walked_edges') }}

select
    components.record_key,
    components.component_key,
    components.component_size,
    fingerprinted.graph_fingerprint,
    {{ dbt.current_timestamp() }} as computed_at
from components
inner join fingerprinted on components.record_key = fingerprinted.record_key
