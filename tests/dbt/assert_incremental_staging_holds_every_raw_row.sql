-- The incremental staging models hold every key their raw table holds: a run that skipped a
-- load (or read only part of one) shows up here.

with

raw_events as (

    select event_id as record_id from {{ source('web', 'events') }}

),

staged_events as (

    select event_id as record_id from {{ ref('stg_web__events') }}

),

raw_activity as (

    select activity_id as record_id from {{ source('email', 'activity') }}

),

staged_activity as (

    select activity_id as record_id from {{ ref('stg_email__activity') }}

),

raw_order_lines as (

    select order_line_id as record_id from {{ source('shop', 'order_lines') }}

),

staged_order_lines as (

    select order_line_id as record_id from {{ ref('stg_shop__order_lines') }}

),

missing_events as (

    select record_id from raw_events
    except
    select record_id from staged_events

),

missing_activity as (

    select record_id from raw_activity
    except
    select record_id from staged_activity

),

missing_order_lines as (

    select record_id from raw_order_lines
    except
    select record_id from staged_order_lines

)

select
    'web.events' as raw_table,
    record_id
from missing_events
union all
select
    'email.activity' as raw_table,
    record_id
from missing_activity
union all
select
    'shop.order_lines' as raw_table,
    record_id
from missing_order_lines
