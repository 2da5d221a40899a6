"""Reps' decisions on the leads routed to them, stored in the warehouse (raw.lead_decisions)
with who, when and why, and read by the next run of the sales models (marts.lead_tasks):

- accepted: the rep takes the lead (sales accepted lead, SAL);
- rejected: the rep turns it down, with a reason.

A decision is about the lead's current task: the one its present rep holds in marts.lead_tasks
(open, or breached but not yet reassigned). A lead already decided, or routed to nobody, cannot
be decided again until the models route it anew.
"""

from __future__ import annotations

import uuid

from cdp.core.config import who
from cdp.core.sql import RAW_SCHEMA, dict_rows, quote, table_exists, utc_now
from cdp.core.warehouse import Warehouse, as_warehouse

DECISIONS_TABLE = "lead_decisions"
DECISIONS = f"{quote(RAW_SCHEMA)}.{quote(DECISIONS_TABLE)}"
OUTCOMES = ("accepted", "rejected")
TASKS = "marts.lead_tasks"
# Statuses a rep can still decide on: a breached task stays with its rep until the next run
# reassigns it.
DECIDABLE = ("open", "breached")


class LeadDecisionError(ValueError):
    """A decision that cannot be stored; the message says why."""


def ensure_table(con: Warehouse) -> None:
    con.execute(f"create schema if not exists {quote(RAW_SCHEMA)}")
    con.execute(f"""create table if not exists {DECISIONS} (
        decision_id varchar, task_id varchar, contact_id varchar, decision varchar,
        reason varchar, decided_by varchar, decided_at timestamp)""")


def _require_tasks(con: Warehouse) -> None:
    if not table_exists(con, "marts", "lead_tasks"):
        raise LeadDecisionError("no lead tasks yet: run `cdp run` first")


def tasks(
    con,
    owner: str | None = None,
    status: str | None = None,
    contact_id: str | None = None,
) -> list[dict]:
    """Lead tasks, newest first, optionally of one rep, status or lead."""
    con = as_warehouse(con)
    _require_tasks(con)
    conditions, params = [], []
    filters = (
        ("owner_name", owner),
        ("status", status),
        ("contact_id", contact_id),
    )
    for column, value in filters:
        if value:
            conditions.append(f"{column} = ?")
            params.append(value)
    where = f"where {' and '.join(conditions)}" if conditions else ""
    return dict_rows(
        con,
        f"""select task_id, contact_id, profile_id, owner_name, grade, lead_score,
            aged_lead_score, status, created_at, due_at, decided_by, decided_at,
            decision_reason
        from {TASKS} {where} order by created_at desc, due_at, contact_id""",
        params,
    )


def current_task(con: Warehouse, contact_id: str) -> dict:
    """The task a rep can decide on for this lead."""
    known = tasks(con, contact_id=contact_id)
    candidates = [t for t in known if t["status"] in DECIDABLE]
    if candidates:
        return candidates[0]
    if not known:
        raise LeadDecisionError(f"{contact_id}: no lead task (only routed leads have one)")
    latest = known[0]
    raise LeadDecisionError(
        f"{contact_id}: its task with {latest['owner_name']} is {latest['status']}; "
        "nothing to decide"
    )


def decide(
    con,
    contact_id: str,
    decision: str,
    reason: str = "",
    decided_by: str | None = None,
) -> tuple[str, dict]:
    """Store a rep's decision on the lead's current task; the decision's id and the task."""
    con = as_warehouse(con)
    if decision not in OUTCOMES:
        raise LeadDecisionError(f"decision must be one of {', '.join(OUTCOMES)}")
    if decision == "rejected" and not reason.strip():
        raise LeadDecisionError("say why the lead is rejected (--reason): marketing reads it")
    task = current_task(con, contact_id)
    ensure_table(con)
    earlier = con.execute(
        f"select decision, decided_by, decided_at from {DECISIONS} where task_id = ?",
        [task["task_id"]],
    ).fetchone()
    if earlier:
        raise LeadDecisionError(
            f"{contact_id}: {earlier[0]} by {earlier[1]} at {earlier[2]:%Y-%m-%d %H:%M} UTC "
            "already; the next `cdp run` applies it"
        )
    decision_id = uuid.uuid4().hex[:12]
    con.execute(
        f"insert into {DECISIONS} values (?, ?, ?, ?, ?, ?, ?)",
        [
            decision_id,
            task["task_id"],
            contact_id,
            decision,
            reason.strip(),
            decided_by or who(),
            utc_now(),
        ],
    )
    return decision_id, task
