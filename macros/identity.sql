{% macro is_entity_source(source_column) -%}
    {#- Whether a record's system holds one record per person (var
        `cdp_identity_entity_sources`, and declared systems that say one_record_per_person):
        a value on several of its records is shared. -#}
    (
        {{ source_column }} in ({{ sql_list(var('cdp_identity_entity_sources')) }})
        or {{ source_column }} in (
            select declared_entities.source
            from {{ ref('stg_declared__person_records') }} as declared_entities
            where declared_entities.is_one_record_per_person
        )
    )
{%- endmacro %}


{#- Connected components of a record graph, as CTEs ending in `components` (record_key,
    component_key, component_size), the component key being the smallest record key linked,
    directly or through others. `records` and `edges` (record_key_a, record_key_b) name relations
    or earlier CTEs; the statement starts with with_recursive(). -#}
{% macro connected_components(records, edges) -%}
    {{ return(adapter.dispatch('connected_components', 'cdp')(records, edges)) }}
{%- endmacro %}

{% macro with_recursive() -%}
    {{ return(adapter.dispatch('with_recursive', 'cdp')()) }}
{%- endmacro %}

{% macro default__with_recursive() -%}
with recursive
{%- endmacro %}

{% macro spark__with_recursive() -%}
with
{%- endmacro %}

{% macro default__connected_components(records, edges) -%}
walk_edges as (

    select
        record_key_a as from_key,
        record_key_b as to_key
    from {{ edges }}
    union
    select
        record_key_b as from_key,
        record_key_a as to_key
    from {{ edges }}

),

-- terminates because UNION drops rows already found
walk (record_key, reached_key) as (

    select
        record_key,
        record_key as reached_key
    from {{ records }}
    union
    select
        walk.record_key,
        walk_edges.to_key as reached_key
    from walk
    inner join walk_edges on walk.reached_key = walk_edges.from_key

),

components as (

    select
        record_key,
        min(reached_key) as component_key,
        count(*) as component_size
    from walk
    group by record_key

)
{%- endmacro %}

{% macro spark__connected_components(records, edges, rounds=24) -%}
    {#- Spark's recursive CTEs take UNION ALL only, which never ends on a cycle: propagate the
        smallest key one hop per round instead. `rounds` bounds the component diameter; the test
        assert_components_closed_under_edges fails if a component needed more. -#}
neighbours as (

    select record_key as from_key, record_key as to_key from {{ records }}
    union
    select record_key_a, record_key_b from {{ edges }}
    union
    select record_key_b, record_key_a from {{ edges }}

),

labels_0 as (

    select record_key, record_key as component_key from {{ records }}

),
{%- for round in range(1, rounds + 1) %}

labels_{{ round }} as (

    select
        neighbours.from_key as record_key,
        min(previous.component_key) as component_key
    from neighbours
    inner join labels_{{ round - 1 }} as previous on neighbours.to_key = previous.record_key
    group by neighbours.from_key

),
{%- endfor %}

components as (

    select
        record_key,
        component_key,
        count(*) over (partition by component_key) as component_size
    from labels_{{ rounds }}

)
{%- endmacro %}

{#- A hash of the given columns' values, nulls included: tells whether a row changed. -#}
{% macro fingerprint(columns) -%}
    {{ return(adapter.dispatch('fingerprint', 'cdp')(columns)) }}
{%- endmacro %}

{% macro default__fingerprint(columns) -%}
    {%- set parts = [] -%}
    {%- for column in columns -%}
        {%- do parts.append("coalesce(cast(" ~ column ~ " as " ~ dbt.type_string() ~ "), '~')") -%}
    {%- endfor -%}
    {{ dbt.hash(parts | join(" || '|' || ")) }}
{%- endmacro %}

{#- DuckDB's own 64-bit hash: md5 over concatenated text took 27 of 34 s at 10M records. -#}
{% macro duckdb__fingerprint(columns) -%}
    cast(hash({{ columns | join(', ') }}) as {{ dbt.type_string() }})
{%- endmacro %}

{#- Aggregate: one hash for the set of rows of a group, whatever their order. -#}
{% macro fingerprint_of_rows(columns) -%}
    {{ return(adapter.dispatch('fingerprint_of_rows', 'cdp')(columns)) }}
{%- endmacro %}

{% macro default__fingerprint_of_rows(columns) -%}
    {{ dbt.listagg(fingerprint(columns), "','", 'order by ' ~ fingerprint(columns)) }}
{%- endmacro %}

{% macro duckdb__fingerprint_of_rows(columns) -%}
    cast(sum(hash({{ columns | join(', ') }})) as {{ dbt.type_string() }})
{%- endmacro %}

{#- Whether a record of int_identity_records (as `alias`) is compared by the probabilistic
    matcher (int_match_candidates): it has a name, an email or a birth date. -#}
{% macro is_match_candidate(alias) -%}
    ({{ alias }}.last_name is not null
        or {{ alias }}.first_name is not null
        or {{ alias }}.email is not null
        or {{ alias }}.birth_date is not null)
{%- endmacro %}

{#- The marts keyed by profile are incremental: a run recomputes the profiles whose records were
    (re)assigned since the mart's newest profile_updated_at (every profile on a full build), and
    their post-hook drops profiles that no longer exist. -#}
{% macro profile_mart_config() -%}
    {{ config(
        materialized=incremental_materialization(unique_key_is_unique=false),
        unique_key='profile_id',
        incremental_strategy=incremental_strategy_for_target(),
        post_hook="{{ delete_rows_gone_from(ref('int_profile_assignments'), 'profile_id') }}",
    ) }}
{%- endmacro %}

{#- (profile_id, profile_updated_at) of the profiles to recompute; see profile_mart_config. -#}
{% macro profiles_to_refresh() -%}
    select
        profile_id,
        max(assigned_at) as profile_updated_at
    from {{ ref('int_profile_assignments') }}
    group by profile_id
    {%- if is_incremental() %}
    having max(assigned_at) > (
        select coalesce(max(profile_updated_at), cast('1900-01-01' as timestamp)) from {{ this }}
    )
    {%- endif %}
{%- endmacro %}

{#- The reason of the first blocklist pattern (by reason) the value matches, or null. The
    patterns are written into the query as literals: DuckDB compiles a pattern read from a column
    once per row (19 s for the 3.4M identifier values at 10M source records), a literal once. A
    unit test's fixture, or a seed not loaded yet (linting), is no table to read beforehand: there
    a subquery reads it. -#}
{% macro blocklist_reason(kind, value, blocklist) -%}
    {%- if execute and blocklist.schema and load_relation(blocklist) is not none -%}
        {%- set rows = run_query(
            "select identifier_kind, pattern, reason from " ~ blocklist
            ~ " order by reason, identifier_kind, pattern"
        ).rows -%}
        {%- if rows -%}
        case
            {%- for row_kind, pattern, reason in rows %}
            when {{ kind }} = '{{ row_kind }}'
                and {{ regex_matches(value, pattern | replace("'", "''")) }}
                then '{{ reason | replace("'", "''") }}'
            {%- endfor %}
        end
        {%- else -%}
        cast(null as {{ dbt.type_string() }})
        {%- endif -%}
    {%- else -%}
        (
            select min(blocklist.reason)
            from {{ blocklist }} as blocklist
            where
                blocklist.identifier_kind = {{ kind }}
                and {{ regex_matches(value, pattern_column='blocklist.pattern') }}
        )
    {%- endif -%}
{%- endmacro %}


{% macro strongest_chains(seeds, steps, rounds=24, prefix='') -%}
    {#- For every seed (seed, record_key) the strongest chain of steps (from_key, to_key,
        strength) to each record it reaches: a chain is as strong as its weakest step. Rounds of
        one join each (steps hold a record's step to itself, so what was reached stays), on
        every engine; `rounds` bounds the chain length. Ends in CTE `<prefix>chains` (seed,
        record_key, strength); `prefix` names the CTEs apart for a second walk in one model. -#}
{{ prefix }}reach_0 as (

    select
        seed,
        record_key,
        10.0 as strength
    from {{ seeds }}

),
{%- for round in range(1, rounds + 1) %}

{{ prefix }}reach_{{ round }} as (

    select
        reach.seed,
        steps.to_key as record_key,
        max(least(reach.strength, steps.strength)) as strength
    from {{ prefix }}reach_{{ round - 1 }} as reach
    inner join {{ steps }} as steps on reach.record_key = steps.from_key
    group by reach.seed, steps.to_key

),
{%- endfor %}

{{ prefix }}chains as (

    select * from {{ prefix }}reach_{{ rounds }}

)
{%- endmacro %}


{% macro limited_merge_values() -%}
    {#- The values of merge-key kinds a profile may hold a limited number of (max_per_profile),
        with the kind's limit and priority: what the guard counts. -#}
    select
        record_key,
        identifier_kind,
        identifier_value,
        max_per_profile,
        priority
    from {{ ref('int_identifiers_judged') }}
    where can_merge and max_per_profile is not null
{%- endmacro %}


{% macro kinds_over_limit(members, group_key, limited_values) -%}
    {#- Per group of `members` (record_key, `group_key`), each merge-key kind whose distinct values
        are more than a profile may hold, ranked by priority (kind_rank 1 is split first). -#}
    select
        members.{{ group_key }},
        limited.identifier_kind,
        row_number() over (
            partition by members.{{ group_key }}
            order by min(limited.priority), limited.identifier_kind
        ) as kind_rank
    from {{ members }} as members
    inner join {{ limited_values }} as limited on members.record_key = limited.record_key
    group by members.{{ group_key }}, limited.identifier_kind
    having count(distinct limited.identifier_value) > max(limited.max_per_profile)
{%- endmacro %}


{% macro parts_by_nearest_seed(records, chains, group_key) -%}
    {#- Splits each group of `records` (record_key, `group_key`) into parts: a record joins the
        seed whose chain to it is strongest (`chains` from strongest_chains; ties to the lowest
        seed); a record no seed reaches stands alone. A part is named by its lowest record_key. -#}
    select
        records.record_key,
        min(records.record_key) over (
            partition by
                records.{{ group_key }},
                nearest.seed is null,
                coalesce(nearest.seed, records.record_key)
        ) as part_key
    from {{ records }} as records
    left join (
        select
            ranked.record_key,
            ranked.seed
        from (
            select
                record_key,
                seed,
                row_number() over (
                    partition by record_key order by strength desc, seed asc
                ) as seed_rank
            from {{ chains }}
        ) as ranked
        where ranked.seed_rank = 1
    ) as nearest on records.record_key = nearest.record_key
{%- endmacro %}


{% macro seeds_of_split_kind(records, limited_values) -%}
    {#- Each value of the kind a group is split by (`records`: record_key, split_kind) seeds one
        part: (record_key, seed) for every record holding such a value. -#}
    select distinct
        records.record_key,
        limited.identifier_value as seed
    from {{ records }} as records
    inner join {{ limited_values }} as limited
        on
            records.record_key = limited.record_key
            and records.split_kind = limited.identifier_kind
{%- endmacro %}
