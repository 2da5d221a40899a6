"""The 360-degree view of one person, read from the warehouse."""

from __future__ import annotations

from cdp.load import dict_rows
from cdp.warehouse import connect_warehouse

RECENT_EVENTS_SQL = """
with records as (
    select source, source_record_id from marts.customer_profile_records where profile_id = $pid
)
select * from (
    select o.ordered_at as occurred_at, 'order' as kind,
        o.order_id || ' ' || o.order_status || ' ' || o.total_amount || ' ' || o.currency as detail
    from staging.stg_shop__orders o join records r
        on r.source = 'shop' and cast(o.customer_id as varchar) = r.source_record_id
    union all
    select e.occurred_at, 'web ' || e.event_name, coalesce(e.page_path, '') || ' '
        || coalesce(e.utm_campaign, '')
    from staging.stg_web__events e join records r
        on r.source = 'web' and e.anonymous_id = r.source_record_id
    union all
    select t.created_at, 'ticket', t.ticket_id || ' ' || t.priority || ' ' || t.ticket_status
        || ' ' || t.subject
    from staging.stg_support__tickets t join records r
        on r.source = 'support' and t.ticket_id = r.source_record_id
    union all
    select a.occurred_at, 'email ' || a.activity_type, coalesce(a.campaign_name, '')
    from staging.stg_email__activity a join records r
        on r.source = 'email' and a.subscriber_id = r.source_record_id
    union all
    select p.purchased_at, 'store purchase', p.store_id || ' ' || p.amount || ' ' || p.currency
    from staging.stg_loyalty__purchases p join records r
        on r.source = 'loyalty' and p.card_number = r.source_record_id
) as events order by occurred_at desc limit $limit
"""


class ProfileNotFound(LookupError):
    pass


def resolve_profile_id(con, email_or_profile_id: str) -> str:
    key = email_or_profile_id.strip()
    if "@" in key:
        found = con.execute(
            "select distinct profile_id from marts.customer_identifiers"
            " where identifier_kind = 'email' and identifier_value = ?",
            [key.lower()],
        ).fetchall()
        if not found:
            raise ProfileNotFound(f"no profile has the email {key!r}")
        if len(found) > 1:
            raise ProfileNotFound(
                f"{key!r} belongs to {len(found)} profiles (a shared address): "
                + ", ".join(r[0] for r in found)
            )
        return found[0][0]
    found = con.execute("select 1 from marts.customers where profile_id = ?", [key]).fetchall()
    if not found:
        raise ProfileNotFound(f"no profile {key!r}")
    return key


def profile_360(warehouse: str, email_or_profile_id: str, events: int = 15) -> dict:
    con = connect_warehouse(read_only=True, path=warehouse)
    try:
        pid = resolve_profile_id(con, email_or_profile_id)
        params = {"pid": pid}
        return {
            "profile_id": pid,
            "customer": dict_rows(
                con, "select * from marts.customers where profile_id = $pid", params
            )[0],
            "attributes": dict_rows(
                con,
                """
                select attribute, attribute_value as value, source_system, source_record_id,
                    observed_at, survivorship_rule, candidate_values
                from marts.customer_attribute_provenance where profile_id = $pid
                order by attribute""",
                params,
            ),
            "identifiers": dict_rows(
                con,
                """
                select identifier_kind, identifier_value, sources, first_observed_at,
                    is_blocklisted, is_shared
                from marts.customer_identifiers where profile_id = $pid
                order by identifier_kind, identifier_value""",
                params,
            ),
            "records": dict_rows(
                con,
                """
                select source, source_record_id, first_seen_at, observed_at
                from marts.customer_profile_records where profile_id = $pid
                order by source, source_record_id""",
                params,
            ),
            "recent_events": dict_rows(con, RECENT_EVENTS_SQL, {**params, "limit": events}),
            "merges": dict_rows(
                con,
                """
                select event_type, profile_id, other_profile_id, records_moved, cause,
                    happened_at
                from marts.identity_merges where profile_id = $pid or other_profile_id = $pid
                order by happened_at""",
                params,
            ),
            "changes": dict_rows(
                con,
                """
                select attribute, old_value, new_value, change_type, changed_at, source_system,
                    source_record_id
                from marts.customer_changes where profile_id = $pid
                order by changed_at desc, attribute limit 30""",
                params,
            ),
        }
    finally:
        con.close()
