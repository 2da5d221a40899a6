{% test within_range(model, column_name, min_value, max_value) %}
{#- Fails for values outside [min_value, max_value] (null passes: not_null says otherwise). -#}
select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ min_value }} or {{ column_name }} > {{ max_value }}
{% endtest %}
