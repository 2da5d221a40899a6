{#- The few functions DuckDB and PostgreSQL spell differently, or DuckDB runs faster spelled
    its own way. -#}

{% macro regex_matches(expression, pattern, pattern_column=none) -%}
    {#- Whole-value match against a literal pattern, or against the patterns in a column. -#}
    {%- set pattern_sql = pattern_column if pattern_column else "'" ~ pattern ~ "'" -%}
    {{ return(adapter.dispatch('regex_matches', 'cdp')(expression, pattern_sql)) }}
{%- endmacro %}

{% macro default__regex_matches(expression, pattern_sql) -%}
    coalesce(({{ expression }}) ~ ('^(?:' || {{ pattern_sql }} || ')$'), false)
{%- endmacro %}

{% macro duckdb__regex_matches(expression, pattern_sql) -%}
    coalesce(regexp_full_match({{ expression }}, {{ pattern_sql }}), false)
{%- endmacro %}


{% macro title_case(expression) -%}
    {{ return(adapter.dispatch('title_case', 'cdp')(expression)) }}
{%- endmacro %}

{% macro default__title_case(expression) -%}
    initcap({{ expression }})
{%- endmacro %}

{% macro duckdb__title_case(expression) -%}
    {#- PostgreSQL's initcap, which DuckDB lacks: upper case after anything that is not a letter
        or digit (O'Brien, Jean-Luc, Müller), so both warehouses spell a name alike. -#}
    {%- set lowered = "lower(" ~ expression ~ ")" -%}
    array_to_string(list_transform(generate_series(1, length({{ lowered }})),
        lambda i: case
            when i = 1 or not regexp_matches(substr({{ lowered }}, i - 1, 1), '[\pL\pN]')
                then upper(substr({{ lowered }}, i, 1))
            else substr({{ lowered }}, i, 1)
        end), '')
{%- endmacro %}


{% macro value_for_key(key, mapping, otherwise='null') -%}
    {#- The text `mapping` (a dict of text) holds for `key`, else `otherwise`. -#}
    {{ return(adapter.dispatch('value_for_key', 'cdp')(key, mapping, otherwise)) }}
{%- endmacro %}

{% macro default__value_for_key(key, mapping, otherwise) -%}
    case {{ key }}
    {%- for name, value in mapping.items() %}
        when '{{ name | replace("'", "''") }}' then '{{ value | replace("'", "''") }}'
    {%- endfor %}
        else {{ otherwise }}
    end
{%- endmacro %}

{% macro duckdb__value_for_key(key, mapping, otherwise) -%}
    {#- A map literal, looked up once per row. DuckDB's CASE compared the key with every entry
        in turn and evaluated the key again each time: the country of 7,389 shop customers
        (a thousand spellings) took 632 ms that way and 25 ms this way. -#}
    coalesce(map {{ "{" }}
    {%- for name, value in mapping.items() -%}
        '{{ name | replace("'", "''") }}': '{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}
    {%- endfor -%}
    {{ "}" }}[{{ key }}], {{ otherwise }})
{%- endmacro %}


{% macro json_field(column, path) -%}
    {#- Text at a dotted path inside a JSON text column, e.g. json_field('context', 'geo.city'). -#}
    {{ return(adapter.dispatch('json_field', 'cdp')(column, path)) }}
{%- endmacro %}

{% macro default__json_field(column, path) -%}
    (cast({{ column }} as json) #>> '{ {{- path.split('.') | join(',') -}} }')
{%- endmacro %}

{% macro duckdb__json_field(column, path) -%}
    json_extract_string({{ column }}, '$.{{ path }}')
{%- endmacro %}


{% macro parse_german_datetime(column) -%}
    {{ return(adapter.dispatch('parse_german_datetime', 'cdp')(column)) }}
{%- endmacro %}

{% macro default__parse_german_datetime(column) -%}
    cast(to_timestamp({{ column }}, 'DD.MM.YYYY HH24:MI') as timestamp)
{%- endmacro %}

{% macro duckdb__parse_german_datetime(column) -%}
    strptime({{ column }}, '%d.%m.%Y %H:%M')
{%- endmacro %}


{% macro parse_german_date(column) -%}
    {{ return(adapter.dispatch('parse_german_date', 'cdp')(column)) }}
{%- endmacro %}

{% macro default__parse_german_date(column) -%}
    to_date({{ column }}, 'DD.MM.YYYY')
{%- endmacro %}

{% macro duckdb__parse_german_date(column) -%}
    cast(strptime({{ column }}, '%d.%m.%Y') as date)
{%- endmacro %}


{% macro latest_per_key(relation, key, order_by) -%}
    {#- One row per key: the first by `order_by` (newest version, then newest load). Callers
        order their typed columns `desc nulls last` after that: a version whose value did not
        parse (null, kept in raw) loses to its twin on every warehouse. -#}
    {%- set order_by = order_by if order_by is string else order_by | join(', ') -%}
    {{ return(adapter.dispatch('latest_per_key', 'cdp')(relation, key, order_by)) }}
{%- endmacro %}

{% macro default__latest_per_key(relation, key, order_by) -%}
    select distinct on ({{ key }}) * from {{ relation }} order by {{ key }}, {{ order_by }}
{%- endmacro %}

{% macro duckdb__latest_per_key(relation, key, order_by) -%}
    select * from {{ relation }}
    qualify row_number() over (partition by {{ key }} order by {{ order_by }}) = 1
{%- endmacro %}


{% macro regexp_extract(expression, pattern) -%}
    {#- The first match of `pattern` in the text, or null. -#}
    {{ return(adapter.dispatch('regexp_extract', 'cdp')(expression, pattern)) }}
{%- endmacro %}

{% macro default__regexp_extract(expression, pattern) -%}
    substring({{ expression }} from '({{ pattern }})')
{%- endmacro %}

{% macro duckdb__regexp_extract(expression, pattern) -%}
    nullif(regexp_extract({{ expression }}, '{{ pattern }}'), '')
{%- endmacro %}

{% macro spark__regexp_extract(expression, pattern) -%}
    nullif(regexp_extract({{ expression }}, '({{ pattern }})', 1), '')
{%- endmacro %}


{% macro first_words(expression) -%}
    {#- All but the last word ("Anna Maria Müller" -> "Anna Maria"); null for a single word. -#}
    nullif(trim(substr({{ expression }}, 1,
        length({{ expression }}) - coalesce(length({{ last_word(expression) }}), 0))), '')
{%- endmacro %}


{% macro last_word(expression) -%}
    {#- The last whitespace-separated word of a text ("Anna Maria Müller" -> "Müller"). -#}
    {{ return(adapter.dispatch('last_word', 'cdp')(expression)) }}
{%- endmacro %}

{% macro default__last_word(expression) -%}
    substring({{ expression }} from '(\S+)$')
{%- endmacro %}

{% macro duckdb__last_word(expression) -%}
    nullif(regexp_extract({{ expression }}, '(\S+)$', 1), '')
{%- endmacro %}


{% macro most_frequent(expression) -%}
    {#- The most frequent non-null value of a group (ties: any of them). -#}
    {{ return(adapter.dispatch('most_frequent', 'cdp')(expression)) }}
{%- endmacro %}

{% macro default__most_frequent(expression) -%}
    mode() within group (order by {{ expression }})
{%- endmacro %}

{% macro duckdb__most_frequent(expression) -%}
    mode({{ expression }})
{%- endmacro %}


{% macro source_or_empty(source_name, table_name, columns) -%}
    {#- A source that a Python asset writes (enrichment, predictions): its columns, or no rows of
        the same shape before that asset first ran, so a build never depends on it. -#}
    {%- set relation = source(source_name, table_name) -%}
    {%- set exists = execute and adapter.get_relation(
        database=relation.database, schema=relation.schema, identifier=relation.identifier
    ) is not none -%}
    {%- if exists -%}
    select {{ columns.keys() | join(', ') }} from {{ relation }}
    {%- else -%}
    select
        {%- for name, data_type in columns.items() %}
        cast(null as {{ data_type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    where 1 = 0
    {%- endif -%}
{%- endmacro %}


{% macro column_or_null(relation, column, data_type) -%}
    {#- A column of an incremental model's own table, or null where a table built by an older
        version lacks it (the run then fills it in: on_schema_change adds the column). -#}
    {#- A unit test gives the table as its fixture (a name, not a relation): its columns. -#}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name')
        | map('lower') | list if execute and relation is not string else [] -%}
    {%- if relation is string or column | lower in names -%}
    {{ column }}
    {%- else -%}
    cast(null as {{ data_type }})
    {%- endif -%}
{%- endmacro %}


{% macro distinct_list(expression) -%}
    {#- The distinct values of a group, sorted, as one comma-separated text. -#}
    {{ return(adapter.dispatch('distinct_list', 'cdp')(expression)) }}
{%- endmacro %}

{% macro default__distinct_list(expression) -%}
    string_agg(distinct {{ expression }}, ', ' order by {{ expression }})
{%- endmacro %}


{#- Apache Spark (dbt-spark). Regular expressions are Java's; string literals take backslash
    escapes, so patterns avoid backslashes. -#}

{% macro spark__regex_matches(expression, pattern_sql) -%}
    coalesce(({{ expression }}) rlike ('^(?:' || {{ pattern_sql }} || ')$'), false)
{%- endmacro %}

{% macro spark__json_field(column, path) -%}
    get_json_object({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro spark__parse_german_datetime(column) -%}
    to_timestamp({{ column }}, 'dd.MM.yyyy HH:mm')
{%- endmacro %}

{% macro spark__parse_german_date(column) -%}
    to_date({{ column }}, 'dd.MM.yyyy')
{%- endmacro %}

{% macro spark__latest_per_key(relation, key, order_by) -%}
    select * except (_row_number) from (
        select *, row_number() over (partition by {{ key }} order by {{ order_by }}) as _row_number
        from {{ relation }}
    ) as numbered
    where _row_number = 1
{%- endmacro %}

{% macro spark__last_word(expression) -%}
    nullif(regexp_extract({{ expression }}, '([^ ]+)$', 1), '')
{%- endmacro %}

{% macro spark__most_frequent(expression) -%}
    mode({{ expression }})
{%- endmacro %}

{% macro spark__distinct_list(expression) -%}
    array_join(array_sort(collect_set({{ expression }})), ', ')
{%- endmacro %}

{% macro spark__title_case(expression) -%}
    {#- As duckdb__title_case: upper case after anything that is not a letter or digit. -#}
    {%- set lowered = "lower(" ~ expression ~ ")" -%}
    array_join(transform(sequence(1, length({{ lowered }})),
        i -> case
            when i = 1 or not substr({{ lowered }}, i - 1, 1) rlike '[\pL\pN]'
                then upper(substr({{ lowered }}, i, 1))
            else substr({{ lowered }}, i, 1)
        end), '')
{%- endmacro %}


{#- Models that must remember earlier runs (stable profile ids, sticky rep assignments) and the
    large append-only staging tables (for speed) are incremental with delete+insert; Spark needs
    a table format with MERGE for that (var cdp_spark_file_format: delta or iceberg on a
    cluster) and, on plain Parquet, rebuilds them. -#}
{% macro incremental_materialization(unique_key_is_unique=true) -%}
    {#- Spark merges need a key unique in the model (and a table format that merges). -#}
    {%- if target.type == 'spark' and not (spark_merges() and unique_key_is_unique) -%}
        {{ return('table') }}
    {%- endif -%}
    {{ return('incremental') }}
{%- endmacro %}

{% macro incremental_strategy_for_target() -%}
    {{ return('merge' if target.type == 'spark' else 'delete+insert') }}
{%- endmacro %}

{% macro spark_merges() -%}
    {{ return(var('cdp_spark_file_format', 'parquet') in ('delta', 'iceberg', 'hudi')) }}
{%- endmacro %}


{% macro delete_rows_gone_from(relation, key, relation_key=none) -%}
    {#- Post-hook of incremental models: rows whose key is gone from `relation` (an erased
        person's raw rows, a profile merged into another) leave this model too, as a rebuild
        would drop them. `relation_key`: the expression over `current_rows` that gives the key
        when the model derives it (e.g. trimmed), else the column of the same name. -#}
    {%- if model.config.materialized == 'incremental' -%}
    delete from {{ this }} as kept
    where not exists (
        select 1 from {{ relation }} as current_rows
        where {{ relation_key or 'current_rows.' ~ key }} = kept.{{ key }}
    )
    {%- endif -%}
{%- endmacro %}


{% macro loaded_since_last_run() -%}
    {#- Incremental staging of an append-only raw table: only rows loaded after the newest row
        the model holds (a load is one transaction, so no load is split across runs). -#}
    {%- if is_incremental() %}
    where _loaded_at > (
        select coalesce(max(loaded_at), cast('1900-01-01' as timestamp)) from {{ this }}
    )
    {%- endif %}
{%- endmacro %}
