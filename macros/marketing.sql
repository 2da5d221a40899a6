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
    round(
        cast(
            (extract(epoch from {{ end_column }}) - extract(epoch from {{ start_column }})) / 86400.0
            as numeric
        ),
        2
    )
{%- endmacro %}
