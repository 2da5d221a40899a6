"""Data-subject access: one JSON document with everything the CDP holds about a person and
where it sent what, when (GDPR Art. 15)."""

from __future__ import annotations

import datetime as dt

import duckdb

from cdp.load import table_exists
from cdp.profile import _rows, profile_360


def access_export(warehouse: str, email_or_profile_id: str) -> dict:
    view = profile_360(warehouse, email_or_profile_id, events=100_000)
    pid = {"pid": view["profile_id"]}
    con = duckdb.connect(warehouse, read_only=True)
    try:
        consents = _rows(
            con,
            """
            select purpose, channel, is_granted, statement, source_system, source_record_id,
                stated_at from marts.customer_consents where profile_id = $pid
            order by purpose, channel""",
            pid,
        )
        consent_history = _rows(
            con,
            """
            select purpose, channel, is_granted, statement, source, source_record_id, stated_at
            from intermediate.int_consent_statements where profile_id = $pid
            order by stated_at""",
            pid,
        )
        deliveries, synced_now = [], []
        if table_exists(con, "reverse_etl", "sync_deliveries"):
            deliveries = _rows(
                con,
                """
                select sync_name, destination, object, action, fields, destination_id,
                    delivered_at from reverse_etl.sync_deliveries where record_key = $pid
                order by delivered_at""",
                pid,
            )
            synced_now = _rows(
                con,
                """
                select sync_name, destination_id, synced_at from reverse_etl.sync_state
                where record_key = $pid order by sync_name""",
                pid,
            )
    finally:
        con.close()
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "profile_id": view["profile_id"],
        "golden_record": view["customer"],
        "attributes_with_provenance": view["attributes"],
        "identifiers": view["identifiers"],
        "source_records": view["records"],
        "events": view["recent_events"],
        "consents": consents,
        "consent_history": consent_history,
        "merges": view["merges"],
        "changes": view["changes"],
        "deliveries": deliveries,
        "held_by_destinations": synced_now,
    }
