{% macro marketing_channel(utm_medium, utm_source, referrer) -%}
    {#- One channel name for a visit or order: UTM medium first, then the referring site. -#}
    case
        when {{ utm_medium }} in ('cpc', 'ppc', 'paid_search') then 'paid_search'
        when {{ utm_medium }} in ('paid_social', 'social_paid') then 'paid_social'
        when {{ utm_medium }} in ('email', 'newsletter') then 'email'
        when {{ utm_medium }} = 'affiliate' then 'affiliate'
        when {{ utm_medium }} is not null then {{ utm_medium }}
        when {{ referrer }} like '%google.%' or {{ referrer }} like '%bing.%'
            or {{ referrer }} like '%duckduckgo.%' then 'organic_search'
        when {{ referrer }} like '%facebook.%' or {{ referrer }} like '%instagram.%'
            or {{ referrer }} like '%t.co/%' or {{ referrer }} like '%linkedin.%'
            then 'organic_social'
        when {{ referrer }} is not null then 'referral'
        else 'direct'
    end
{%- endmacro %}


{% macro days_between(start_column, end_column) -%}
    {#- Fractional days between two timestamps (null when either is null). -#}
    {{ return(adapter.dispatch('days_between', 'cdp')(start_column, end_column)) }}
{%- endmacro %}

{% macro default__days_between(start_column, end_column) -%}
    round(
        cast(
            (extract(epoch from {{ end_column }}) - extract(epoch from {{ start_column }})) / 86400.0
            as numeric
        ),
        2
    )
{%- endmacro %}

{% macro spark__days_between(start_column, end_column) -%}
    round(
        cast((unix_timestamp({{ end_column }}) - unix_timestamp({{ start_column }})) / 86400.0
            as decimal(18, 6)),
        2
    )
{%- endmacro %}


{% macro attribution_columns(template) -%}
    {#- The template once per attribution model, {m} replaced by the model's name. -#}
    {%- set models = ['first_touch', 'last_touch', 'linear', 'time_decay', 'position_based'] -%}
    {%- for m in models -%}
        {{ template | replace('{m}', m) }}{{ ",\n    " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}


{% macro consent_trait_columns(alias=none) -%}
    {#- One column per purpose and channel of var cdp_consent_traits: the aggregate over
        customer_consents, or (with an alias) the columns of that aggregate. -#}
    {%- set columns = [] -%}
    {%- for purpose, channels in var('cdp_consent_traits').items() -%}
        {%- for channel in channels -%}
            {%- if alias -%}
                {%- do columns.append(alias ~ '.consent_' ~ purpose ~ '_' ~ channel) -%}
            {%- else -%}
                {%- do columns.append(
                    "bool_or(case when purpose = '" ~ purpose ~ "' and channel = '" ~ channel
                    ~ "' then is_granted end) as consent_" ~ purpose ~ "_" ~ channel
                ) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ columns | join(",\n    ") }}
{%- endmacro %}


{% macro fired_lead_score_rules(relation) -%}
    {#- One row per lead and rule of var cdp_lead_scoring whose condition holds. -#}
    {%- for rule in var('cdp_lead_scoring').rules %}
    select
        contact_id,
        '{{ rule.name }}' as rule_name,
        '{{ rule.kind }}' as rule_kind,
        {{ rule.points }} as points
    from {{ relation }}
    where coalesce({{ rule.when }}, false)
    {{ "union all" if not loop.last }}
    {%- endfor %}
{%- endmacro %}


{% macro ticket_channel(channel_column) -%}
    {#- The contact channel of a support ticket's channel value, by var
        cdp_preferences.ticket_channels (lower case); null for a value it does not list. -#}
    case lower(trim({{ channel_column }}))
    {%- for channel, values in var('cdp_preferences').ticket_channels.items() %}
        {%- for value in values %}
        when '{{ value }}' then '{{ channel }}'
        {%- endfor %}
    {%- endfor %}
    end
{%- endmacro %}


{% macro activity_share_score(column) -%}
    {#- 0 when `column` is 0 or null; else 1-100, the share of rows with some activity whose
        value is at most this row's: a share, not a count, so it reads the same on any data's
        volume (engagement of customers and accounts, account intent). -#}
    case
        when {{ column }} > 0
            then
                cast(ceil(100 * cume_dist() over (
                    partition by {{ column }} > 0 order by {{ column }}
                )) as integer)
        else 0
    end
{%- endmacro %}


{% macro ranked_by_spend(relation, column) -%}
    {#- Per profile, each value of `column` its purchases (profile, spend_eur, quantity,
        last_bought_at rows) name, ranked by spend, then pieces, then the latest purchase. -#}
    select
        profile_id,
        {{ column }},
        row_number() over (
            partition by profile_id
            order by
                sum(spend_eur) desc,
                sum(quantity) desc,
                max(last_bought_at) desc,
                {{ column }} asc
        ) as spend_rank
    from {{ relation }}
    where {{ column }} is not null
    group by profile_id, {{ column }}
{%- endmacro %}
