-- The time the data stands at: var cdp_as_of when set, else the newest activity any source
-- holds, never later than the wall clock (a date in the future is a typo, not the present).
-- Recency traits and rules count back from it, so a data set gives the same answers on any
-- day it is built; with no activity at all, the wall clock.

with

activity as (

    select max(occurred_at) as happened_at
    from {{ ref('stg_web__events') }}
    where occurred_at <= {{ current_utc() }}

    union all

    select max(transacted_at) as happened_at
    from {{ ref('int_customer_transactions') }}
    where transacted_at <= {{ current_utc() }}

    union all

    select max(occurred_at) as happened_at
    from {{ ref('stg_email__activity') }}
    where occurred_at <= {{ current_utc() }}

    union all

    select max(changed_at) as happened_at
    from {{ ref('stg_crm__lead_status_history') }}
    where changed_at <= {{ current_utc() }}

)

select
    {% if var('cdp_as_of', none) -%}
        cast('{{ var("cdp_as_of") }}' as timestamp)
    {%- else -%}
        coalesce(max(happened_at), {{ current_utc() }})
    {%- endif %} as as_of
from activity
