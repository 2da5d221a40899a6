{% test normalized_email(model, column_name) %}
{#- Fails for emails that are not lower case, trimmed and syntactically valid. -#}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
    and not {{ regex_matches(column_name, '^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$') }}
{% endtest %}
