{#- Personal data on non-production targets: every column tagged `meta: {pii: true}` in a
    model's yml is replaced by a hash after the model builds. The tag is the only switch: tag a
    column and it is masked. Hashes are deterministic (equal values stay equal, so joins and
    identity links still work), keep the shape the format tests check (emails stay addresses,
    phones stay E.164), and are recognizable, so masking a table twice (incremental models)
    changes nothing. Dates and numbers become null. -#}

{% macro mask_pii() -%}
    {%- if not execute or target.name in var('cdp_production_targets') -%}
        {{ return('') }}
    {%- endif -%}
    {#- a view shows the masked values of the tables it reads -#}
    {%- if model.config.materialized == 'view' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set tagged = [] -%}
    {%- for name, column in model.columns.items() -%}
        {%- if (column.meta or {}).get('pii') or (column.config or {}).get('meta', {}).get('pii') -%}
            {%- do tagged.append(name | lower) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not tagged -%}
        {{ return('') }}
    {%- endif -%}
    {%- set assignments = [] -%}
    {%- for column in adapter.get_columns_in_relation(this) -%}
        {%- if column.name | lower in tagged -%}
            {%- do assignments.append(adapter.quote(column.name) ~ ' = ' ~ pii_hash(adapter.quote(column.name), column)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if assignments -%}
        update {{ this }} set {{ assignments | join(', ') }}
    {%- endif -%}
{%- endmacro %}


{% macro pii_hash(expression, column) -%}
    {%- set name = column.name | lower -%}
    {%- if not column.is_string() -%}
        null
    {%- else -%}
        case
            when {{ expression }} is null
                or left({{ expression }}, 4) in ('pii_', '+999') then {{ expression }}
            {%- if 'email' in name %}
            else 'pii_' || left(md5({{ expression }}), 16) || '@masked.invalid'
            {%- elif 'phone' in name %}
            else '+999' || translate(left(md5({{ expression }}), 10), 'abcdef', '123456')
            {%- else %}
            else 'pii_' || left(md5({{ expression }}), 16)
            {%- endif %}
        end
    {%- endif -%}
{%- endmacro %}
