{% test primary_key(model, column_name) %}
{#- Fails for every value of the key column that is null or appears more than once: dbt's
unique and not_null in one scan and one node (a test node's own cost in dbt is ten times these
queries'). -#}
select {{ column_name }}, count(*) as occurrences
from {{ model }}
group by {{ column_name }}
having count(*) > 1 or {{ column_name }} is null
{% endtest %}
