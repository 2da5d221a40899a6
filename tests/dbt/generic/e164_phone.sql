{% test e164_phone(model, column_name) %}
{#- Fails for phone numbers not in E.164 form (+, country code, 9 to 15 digits in all). -#}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
    and not {{ regex_matches(column_name, '^\\+[1-9][0-9]{8,14}$') }}
{% endtest %}
