{#- The few functions DuckDB and PostgreSQL spell differently. -#}

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
    {#- DuckDB has no initcap: capitalise each space- and hyphen-separated part. -#}
    array_to_string(list_transform(string_split(lower({{ expression }}), ' '),
        lambda word: array_to_string(list_transform(string_split(word, '-'),
            lambda part: upper(left(part, 1)) || substr(part, 2)), '-')), ' ')
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
    {#- One row per key: the first by `order_by` (newest version, then newest load). -#}
    {{ return(adapter.dispatch('latest_per_key', 'cdp')(relation, key, order_by)) }}
{%- endmacro %}

{% macro default__latest_per_key(relation, key, order_by) -%}
    select distinct on ({{ key }}) * from {{ relation }} order by {{ key }}, {{ order_by }}
{%- endmacro %}

{% macro duckdb__latest_per_key(relation, key, order_by) -%}
    select * from {{ relation }}
    qualify row_number() over (partition by {{ key }} order by {{ order_by }}) = 1
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
