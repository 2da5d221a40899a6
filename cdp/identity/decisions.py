"""Human decisions on identity, stored in the warehouse (raw.identity_decisions) with who, when
and why, and honoured by every later run (int_identity_edges):

- merge: link two records (accepting a review pair, or joining two profiles by hand);
- keep_apart: never link two records directly (rejecting a review pair, undoing a match);
- detach: take a record out of its profile: none of its links count (an unmerge).

The latest decision about a pair (or a detached record) wins. Decisions reach the profiles with
the next run of the identity models (`cdp run`, or the daily schedule).
"""

from __future__ import annotations

import uuid

from cdp.core.config import who
from cdp.core.sql import RAW_SCHEMA, quote, table_exists, utc_now
from cdp.core.warehouse import Warehouse, as_warehouse

DECISIONS_TABLE = "identity_decisions"
DECISIONS = f"{quote(RAW_SCHEMA)}.{quote(DECISIONS_TABLE)}"
ACTIONS = ("merge", "keep_apart", "detach")


class DecisionError(ValueError):
    """A decision that cannot be stored; the message says why."""


def ensure_table(con: Warehouse) -> None:
    con.execute(f"create schema if not exists {quote(RAW_SCHEMA)}")
    con.execute(f"""create table if not exists {DECISIONS} (
        decision_id varchar, action varchar, record_key_a varchar, record_key_b varchar,
        decided_by varchar, decided_at timestamp, reason varchar)""")


def _known_records(con: Warehouse, keys: list[str]) -> None:
    if not table_exists(con, "intermediate", "int_identity_records"):
        raise DecisionError("no identity records yet: run `cdp run` first")
    for key in keys:
        found = con.execute(
            "select 1 from intermediate.int_identity_records where record_key = ?", [key]
        ).fetchall()
        if not found:
            raise DecisionError(f"{key}: no such record (keys look like crm:C-00001)")


def decide(
    con,
    action: str,
    record_key_a: str,
    record_key_b: str | None = None,
    reason: str = "",
    decided_by: str | None = None,
) -> str:
    """Store one decision; returns its id."""
    con = as_warehouse(con)
    if action not in ACTIONS:
        raise DecisionError(f"action must be one of {', '.join(ACTIONS)}")
    if (action == "detach") != (record_key_b is None):
        raise DecisionError(f"{action} takes {'one record' if action == 'detach' else 'two'}")
    if record_key_a == record_key_b:
        raise DecisionError("a record and itself")
    if not reason.strip():
        raise DecisionError("say why (--reason): the decision is kept with the profile's history")
    keys = [record_key_a] + ([record_key_b] if record_key_b else [])
    _known_records(con, keys)
    ensure_table(con)
    if record_key_b is not None:
        record_key_a, record_key_b = sorted((record_key_a, record_key_b))
    decision_id = uuid.uuid4().hex[:12]
    con.execute(
        f"insert into {DECISIONS} values (?, ?, ?, ?, ?, ?, ?)",
        [decision_id, action, record_key_a, record_key_b, decided_by or who(), utc_now(), reason],
    )
    return decision_id


def review_pairs(con, limit: int = 20) -> list[tuple]:
    """Open review pairs, most probable first: (pair id, record a, record b, probability,
    agreed, disagreed, reason)."""
    con = as_warehouse(con)
    if not table_exists(con, "marts", "identity_review_pairs"):
        raise DecisionError("no review pairs yet: run `cdp run` first")
    return con.execute(
        "select substr(review_pair_id, 1, 12), record_key_l, record_key_r, "
        "round(match_probability, 3), "
        "agreed_fields, disagreed_fields, review_reason from marts.identity_review_pairs "
        "order by match_probability desc, review_pair_id limit ?",
        [limit],
    ).fetchall()


def review_pair(con, pair_id: str) -> tuple[str, str]:
    con = as_warehouse(con)
    rows = con.execute(
        "select record_key_l, record_key_r from marts.identity_review_pairs "
        "where review_pair_id like ?",
        [pair_id.strip() + "%"],
    ).fetchall()
    if len(rows) != 1:
        raise DecisionError(
            f"{pair_id}: {'no' if not rows else 'more than one'} open review pair with that id "
            "(cdp identity review lists them)"
        )
    return rows[0]


def decisions(con) -> list[tuple]:
    con = as_warehouse(con)
    ensure_table(con)
    return con.execute(
        f"select decision_id, action, record_key_a, record_key_b, decided_by, decided_at, "
        f"reason from {DECISIONS} order by decided_at"
    ).fetchall()
