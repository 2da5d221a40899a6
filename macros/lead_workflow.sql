{#- The lead workflow (var cdp_lead_workflow): a routed lead is a task for its rep, due within
    the SLA hours of its grade. -#}

{% macro lead_task_id(contact_id, owner_name, assignment_number) -%}
    {#- One task per lead, rep and assignment: reassigning a lead makes a new task. -#}
    {{ dbt.hash(contact_id ~ " || '|' || " ~ owner_name ~ " || '|' || cast(" ~ assignment_number
        ~ " as " ~ dbt.type_string() ~ ")") }}
{%- endmacro %}

{% macro lead_grade(score) -%}
    {#- The first grade (best first) whose min_score the score reaches. -#}
    case
        {%- for grade in var('cdp_lead_workflow').grades %}
        when {{ score }} >= {{ grade.min_score }} then '{{ grade.grade }}'
        {%- endfor %}
    end
{%- endmacro %}

{% macro lead_sla_hours(score) -%}
    {#- Hours a rep has to accept or reject a lead of this score. -#}
    case
        {%- for grade in var('cdp_lead_workflow').grades %}
        when {{ score }} >= {{ grade.min_score }} then {{ grade.sla_hours }}
        {%- endfor %}
    end
{%- endmacro %}
