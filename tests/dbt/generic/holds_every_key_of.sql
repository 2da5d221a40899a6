{% test holds_every_key_of(model, column_name, raw) %}
{#- Fails for every key of `raw` missing from the model: an incremental staging run that skipped
    a load (or read only part of one). -#}
select {{ column_name }} from {{ raw }}
except
select {{ column_name }} from {{ model }}
{% endtest %}
