{% test not_null_columns(model, column_names) %}
{#- Fails for every listed column that holds a null, with how many: the columns of a model that
are never null in one scan and one node instead of a not_null node each (a test node's own cost
in dbt is ten times these queries'). -#}
with null_counts as (
    select
    {%- for column in column_names %}
        sum(case when {{ column }} is null then 1 else 0 end) as nulls_{{ loop.index }}
        {{- "," if not loop.last }}
    {%- endfor %}
    from {{ model }}
)
{%- for column in column_names %}
select '{{ column }}' as column_name, nulls_{{ loop.index }} as null_rows
from null_counts
where nulls_{{ loop.index }} > 0
{{ "union all" if not loop.last }}
{%- endfor %}
{% endtest %}
