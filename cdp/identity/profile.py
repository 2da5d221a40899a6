"""The 360-degree view of one person, read from the warehouse."""

from __future__ import annotations

from cdp.core.sql import dict_rows, table_exists
from cdp.core.warehouse import Warehouse, as_warehouse

RECENT_EVENTS_SQL = """
select occurred_at, kind, detail from marts.customer_events where profile_id = $pid
order by occurred_at desc nulls last, event_key limit $limit
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


def profile_360(con: Warehouse, email_or_profile_id: str, events: int = 15) -> dict:
    con = as_warehouse(con)
    pid = resolve_profile_id(con, email_or_profile_id)
    params = {"pid": pid}
    return {
        "profile_id": pid,
        "customer": dict_rows(con, "select * from marts.customers where profile_id = $pid", params)[
            0
        ],
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
        "traits": (
            dict_rows(con, "select * from marts.customer_traits where profile_id = $pid", params)
            or [{}]
        )[0],
        "actions": (
            dict_rows(
                con,
                "select * from marts.customer_next_best_actions where profile_id = $pid",
                params,
            )
            or [{}]
        )[0],
        "preferences": (
            dict_rows(
                con, "select * from marts.customer_preferences where profile_id = $pid", params
            )
            or [{}]
        )[0],
        "lead_scores": dict_rows(
            con,
            """
            select contact_id, lead_status, behaviour_score, fit_score, lead_score,
                score_reasons, is_marketing_qualified
            from marts.lead_scores where profile_id = $pid order by contact_id""",
            params,
        ),
        # The lead workflow's tasks, decisions and deadlines (absent before the models first
        # built them).
        "lead_tasks": dict_rows(
            con,
            """
            select task_id, contact_id, owner_name, grade, lead_score, aged_lead_score,
                status, created_at, due_at, decided_by, decided_at, decision_reason
            from marts.lead_tasks where profile_id = $pid order by created_at desc""",
            params,
        )
        if table_exists(con, "marts", "lead_tasks")
        else [],
        # The predictive lead score and its reasons (absent before the first lead model).
        "lead_predictions": dict_rows(
            con,
            """
            select contact_id, sal_probability, predicted_rank, rule_score, score_reasons,
                model_run_id, model_version, scored_at
            from ml.lead_predictions where profile_id = $pid order by contact_id""",
            params,
        )
        if table_exists(con, "ml", "lead_predictions")
        else [],
        "audiences": [
            row["audience"]
            for row in dict_rows(
                con,
                "select audience from marts.audience_memberships where profile_id = $pid"
                " order by audience",
                params,
            )
        ],
        "consents": dict_rows(
            con,
            """
            select purpose, channel, is_granted, statement, source_system, stated_at
            from marts.customer_consents where profile_id = $pid order by purpose, channel""",
            params,
        ),
        "destinations": _destinations(con, pid),
        "review_pairs": dict_rows(
            con,
            """
            select review_pair_id, record_key_l, record_key_r, profile_id_l, profile_id_r,
                match_probability, agreed_fields, disagreed_fields, review_reason
            from marts.identity_review_pairs where profile_id_l = $pid or profile_id_r = $pid
            order by match_probability desc""",
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


def _destinations(con, profile_id: str) -> list[dict]:
    """What each sync delivered of the profile (its lead notifications included)."""
    if not table_exists(con, "reverse_etl", "sync_state"):
        return []
    return dict_rows(
        con,
        """
        select sync_name, destination_id, synced_at from reverse_etl.sync_state
        where record_key = $pid or record_key in (
            select notification_id from marts.lead_notifications where profile_id = $pid)
        order by sync_name, destination_id""",
        {"pid": profile_id},
    )


def search_profiles(con: Warehouse, query: str, limit: int = 20) -> list[dict]:
    """Profiles by an identifier (`kind:value`, an email, a profile id) or by name."""
    query = query.strip()
    con = as_warehouse(con)
    columns = "c.profile_id, c.full_name, c.email, c.city, c.sources, c.last_seen_at"
    kind, _, value = query.partition(":")
    if "@" in query and not value:
        kind, value = "email", query
    if value and kind not in ("http", "https"):
        value = value.lower() if kind == "email" else value
        return dict_rows(
            con,
            f"""select distinct {columns} from marts.customer_identifiers i
            join marts.customers c using (profile_id)
            where (i.identifier_kind = $kind and i.identifier_value = $value)
                or ($kind = 'profile_id' and c.profile_id = $value)
            order by c.profile_id limit $limit""",
            {"kind": kind, "value": value, "limit": limit},
        )
    return dict_rows(
        con,
        f"""select {columns} from marts.customers c
        where c.profile_id = $q or lower(c.full_name) like $pattern
        order by c.full_name, c.profile_id limit $limit""",
        {"q": query, "pattern": f"%{query.lower()}%", "limit": limit},
    )
