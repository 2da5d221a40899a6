-- Size of each audience at every build that changed it, with how many entered and left then.

with

history as (

    select * from {{ ref('audience_membership_history') }}

),

moments as (

    select
        audience,
        entered_at as measured_at
    from history
    union
    select
        audience,
        exited_at as measured_at
    from history
    where exited_at is not null

),

sized as (

    select
        moments.audience,
        moments.measured_at,
        count(
            case
                when
                    history.entered_at <= moments.measured_at
                    and (history.exited_at is null or history.exited_at > moments.measured_at)
                    then 1
            end
        ) as member_count,
        count(case when history.entered_at = moments.measured_at then 1 end) as entered_count,
        count(case when history.exited_at = moments.measured_at then 1 end) as exited_count
    from moments
    inner join history on moments.audience = history.audience
    group by moments.audience, moments.measured_at

)

select
    audience || '|' || cast(measured_at as {{ dbt.type_string() }}) as audience_size_id,
    audience,
    measured_at,
    member_count,
    entered_count,
    exited_count,
    measured_at = max(measured_at) over (partition by audience) as is_latest
from sized
