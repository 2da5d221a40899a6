{#- Normalization used by every staging model. Cross-database differences live in the
    dispatched helpers in cross_db.sql; the logic here is written once. -#}

{% macro normalize_email(column) -%}
    case
        when {{ regex_matches('lower(trim(' ~ column ~ '))',
                              '^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$') }}
            then lower(trim({{ column }}))
    end
{%- endmacro %}


{% macro normalize_name(column) -%}
    {#- Collapse whitespace; fix case only where the source shouted or whispered, so
        McDonald and van der Berg survive. -#}
    {%- set squeezed = "trim(" ~ regexp_replace_all(column, '\\s+', ' ') ~ ")" -%}
    case
        when {{ squeezed }} = '' then null
        when {{ squeezed }} = upper({{ squeezed }}) or {{ squeezed }} = lower({{ squeezed }})
            then {{ title_case(squeezed) }}
        else {{ squeezed }}
    end
{%- endmacro %}


{% macro cdp_countries() -%}
    {#- Every ISO 3166 country (macro cdp_country_reference, generated) with var `cdp_countries`
        on top: local spellings added, calling code or trunk prefix overridden. -#}
    {%- set merged = {} -%}
    {%- for code, spec in cdp_country_reference().items() -%}
        {%- do merged.update({code: {'calling_code': spec['calling_code'],
            'national_prefix': spec['national_prefix'], 'aliases': spec['aliases'] | list}}) -%}
    {%- endfor -%}
    {%- for code, spec in (var('cdp_countries', {}) or {}).items() -%}
        {%- set entry = merged.get(code, {'calling_code': '', 'national_prefix': '0', 'aliases': []}) -%}
        {%- for key in ['calling_code', 'national_prefix'] if key in spec -%}
            {%- do entry.update({key: spec[key]}) -%}
        {%- endfor -%}
        {%- do entry.update({'aliases': entry['aliases'] + (spec.get('aliases') or [])}) -%}
        {%- do merged.update({code: entry}) -%}
    {%- endfor -%}
    {{ return(merged) }}
{%- endmacro %}


{% macro normalize_country(column) -%}
    {#- Any spelling of any country to ISO 3166-1 alpha-2; unknown values become null (the
        staging test on it warns with a count). Codes first: an IN list is hashed. -#}
    {%- set countries = cdp_countries() -%}
    {%- set by_alias = {} -%}
    {%- for code, spec in countries.items() -%}
        {%- for alias in spec['aliases'] if alias | lower not in by_alias and alias | lower != code | lower -%}
            {%- do by_alias.update({alias | lower: code}) -%}
        {%- endfor -%}
    {%- endfor -%}
    case
        when upper(trim({{ column }})) in ({{ sql_list(countries.keys() | list) }})
            then upper(trim({{ column }}))
        else {{ value_for_key('lower(trim(' ~ column ~ '))', by_alias) }}
    end
{%- endmacro %}


{% macro calling_code(country_code) -%}
    {%- set countries = cdp_countries() -%}
    {%- set by_country = {} -%}
    {%- for code, spec in countries.items() if spec['calling_code'] -%}
        {%- do by_country.update({code: spec['calling_code']}) -%}
    {%- endfor -%}
    {{ value_for_key(country_code, by_country,
        "'" ~ countries[var("cdp_default_country")]["calling_code"] ~ "'") }}
{%- endmacro %}


{% macro national_number(digits, country_code) -%}
    {#- Drops the trunk prefix (libphonenumber's, or var `cdp_countries`'s override). -#}
    {%- set countries = cdp_countries() -%}
    {%- set default_country = var('cdp_default_country') -%}
    {%- set ns = namespace(other_prefixes={}) -%}
    {%- for code, spec in countries.items() -%}
        {%- set prefix = spec.get('national_prefix', '0') -%}
        {%- if prefix != '0' -%}
            {%- do ns.other_prefixes.setdefault(prefix, []).append(code) -%}
        {%- endif -%}
    {%- endfor -%}
    case
    {%- for prefix, codes in ns.other_prefixes.items() | sort %}
        when coalesce({{ country_code }}, '{{ default_country }}') in ('{{ codes | join("', '") }}')
            then {{ "regexp_replace(" ~ digits ~ ", '^" ~ prefix ~ "', '')" if prefix else digits }}
    {%- endfor %}
        else regexp_replace({{ digits }}, '^0', '')
    end
{%- endmacro %}


{% macro normalize_phone(column, country_code) -%}
    {#- E.164: +<country code><national number>. "+49 (0)30 ...", "0049 30 ...", "030/..." and
        "(030) ..." all become +4930...; numbers without a prefix take the country code (pass a
        column computed in an earlier CTE: the expression is repeated). Too short, too long or
        all-zero national numbers become null. -#}
    {%- set digits -%}
        regexp_replace({{ regexp_replace_all("replace(trim(" ~ column ~ "), '(0)', '')", '[^0-9+]') }},
            '^00', '+')
    {%- endset -%}
    {%- set candidate -%}
        case
            when {{ digits }} like '+%' then {{ digits }}
            else '+' || {{ calling_code(country_code) }} || {{ national_number(digits, country_code) }}
        end
    {%- endset -%}
    case
        when {{ regex_matches(candidate, '^\\+[1-9][0-9]{8,14}$') }}
            and not {{ regex_matches(candidate, '^\\+[1-9][0-9]{0,2}0+$') }}
            then {{ candidate }}
    end
{%- endmacro %}


{% macro to_boolean(column) -%}
    case
        when lower(trim({{ column }})) in ('true', 't', '1', 'yes', 'ja') then true
        when lower(trim({{ column }})) in ('false', 'f', '0', 'no', 'nein') then false
    end
{%- endmacro %}


{% macro local_to_utc(column) -%}
    {#- Wall-clock time of the source's zone (DST-aware) to a UTC timestamp. -#}
    {{ return(adapter.dispatch('local_to_utc', 'cdp')(column)) }}
{%- endmacro %}

{% macro default__local_to_utc(column) -%}
    (cast({{ column }} as timestamp) at time zone '{{ var("cdp_source_timezone") }}')
        at time zone 'UTC'
{%- endmacro %}

{#- Spark sessions run in UTC (profile: spark.sql.session.timeZone). -#}
{% macro spark__local_to_utc(column) -%}
    {#- In the hour the clocks go back, a wall-clock time happens twice: take the later (standard
        time), as PostgreSQL and DuckDB do; Spark alone takes the earlier. -#}
    {%- set local = "cast(" ~ column ~ " as timestamp)" -%}
    {%- set zone = "'" ~ var("cdp_source_timezone") ~ "'" -%}
    {%- set utc = "to_utc_timestamp(" ~ local ~ ", " ~ zone ~ ")" -%}
    case
        when from_utc_timestamp({{ utc }} + interval 1 hour, {{ zone }}) = {{ local }}
            then {{ utc }} + interval 1 hour
        else {{ utc }}
    end
{%- endmacro %}


{% macro iso_to_utc(column) -%}
    {#- An ISO-8601 text with offset or Z to a UTC timestamp. -#}
    {{ return(adapter.dispatch('iso_to_utc', 'cdp')(column)) }}
{%- endmacro %}

{% macro default__iso_to_utc(column) -%}
    (cast({{ column }} as timestamp with time zone) at time zone 'UTC')
{%- endmacro %}

{#- Spark sessions run in UTC: the offset is applied when the text is cast. -#}
{% macro spark__iso_to_utc(column) -%}
    cast({{ column }} as timestamp)
{%- endmacro %}


{% macro name_key(column) -%}
    {#- A comparison key for names: lower case, umlauts and accents folded so Müller, Mueller
        and Muller meet, everything but letters dropped. For matching only, never shown. -#}
    {%- set folded -%}
        translate(
            replace(replace(replace(replace(lower({{ column }}), 'ä', 'ae'), 'ö', 'oe'), 'ü', 'ue'), 'ß', 'ss'),
            'áàâãåçéèêëíìîïñóòôõøúùûýÿłśźżćńěščřžů',
            'aaaaaceeeeiiiinooooouuuyylszzcnescrzu'
        )
    {%- endset -%}
    replace(replace(replace(
        {{ regexp_replace_all(folded, '[^a-z]') }},
    'ue', 'u'), 'oe', 'o'), 'ae', 'a')
{%- endmacro %}


{% macro sql_list(values) -%}
    {#- ['a', 'b'] -> 'a', 'b' (for IN lists built from vars). -#}
    {%- for value in values -%}
        '{{ value }}'{{ ", " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}


{% macro utc_to_local(column) -%}
    {#- A UTC timestamp to wall-clock time of var `cdp_source_timezone`, the customers' zone. -#}
    {{ return(adapter.dispatch('utc_to_local', 'cdp')(column)) }}
{%- endmacro %}

{% macro default__utc_to_local(column) -%}
    (({{ column }} at time zone 'UTC') at time zone '{{ var("cdp_source_timezone") }}')
{%- endmacro %}

{% macro spark__utc_to_local(column) -%}
    from_utc_timestamp({{ column }}, '{{ var("cdp_source_timezone") }}')
{%- endmacro %}


{% macro cdp_now() -%}
    {#- "Now" for recency traits and rules: the time the data stands at (int_data_as_of: var
        `cdp_as_of`, else the newest activity), not the wall clock, so a rebuild on another day
        gives the same answers. Processing times (when a lead was routed) use current_utc(). -#}
    (select as_of from {{ ref('int_data_as_of') }})
{%- endmacro %}


{% macro current_utc() -%}
    {{ return(adapter.dispatch('current_utc', 'cdp')()) }}
{%- endmacro %}

{% macro default__current_utc() -%}
    (current_timestamp at time zone 'UTC')
{%- endmacro %}

{% macro spark__current_utc() -%}
    current_timestamp()
{%- endmacro %}


{% macro regexp_replace_all(expression, pattern, replacement='') -%}
    {#- Every match of `pattern` replaced (PostgreSQL replaces the first without flag 'g'). -#}
    {{ return(adapter.dispatch('regexp_replace_all', 'cdp')(expression, pattern, replacement)) }}
{%- endmacro %}

{% macro default__regexp_replace_all(expression, pattern, replacement) -%}
    regexp_replace({{ expression }}, '{{ pattern }}', '{{ replacement }}', 'g')
{%- endmacro %}

{% macro spark__regexp_replace_all(expression, pattern, replacement) -%}
    regexp_replace({{ expression }}, '{{ pattern }}', '{{ replacement }}')
{%- endmacro %}
