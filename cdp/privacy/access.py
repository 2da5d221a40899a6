"""Data-subject access: one JSON document with everything the CDP holds about a person and
where it sent what, when (GDPR Art. 15)."""

from __future__ import annotations

import datetime as dt

from cdp.core.sql import dict_rows, table_exists
from cdp.core.warehouse import Warehouse, as_warehouse
from cdp.identity.profile import profile_360
from reverse_etl.engine import delivery_log


def access_export(con: Warehouse, email_or_profile_id: str) -> dict:
    con = as_warehouse(con)
    view = profile_360(con, email_or_profile_id, events=100_000)
    pid = {"pid": view["profile_id"]}
    consents = dict_rows(
        con,
        """
        select purpose, channel, is_granted, statement, source_system, source_record_id,
            stated_at from marts.customer_consents where profile_id = $pid
        order by purpose, channel""",
        pid,
    )
    consent_history = dict_rows(
        con,
        """
        select purpose, channel, is_granted, statement, source, source_record_id, stated_at
        from marts.customer_consent_statements where profile_id = $pid
        order by stated_at""",
        pid,
    )
    deliveries, synced_now = [], []
    if table_exists(con, "reverse_etl", "sync_deliveries"):
        deliveries = dict_rows(
            con,
            f"""
            select sync_name, destination, object, action, fields, destination_id,
                delivered_at from {delivery_log(con)} where record_key = $pid
            order by delivered_at""",
            pid,
        )
        synced_now = dict_rows(
            con,
            """
            select sync_name, destination_id, synced_at from reverse_etl.sync_state
            where record_key = $pid order by sync_name""",
            pid,
        )
    processing = processing_record(con, view["profile_id"])
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
        "traits": view["traits"],
        "predictions_and_next_best_action": view["actions"],
        "preferences_and_recommendation": view["preferences"],
        "lead_scores": view["lead_scores"],
        "lead_tasks": view["lead_tasks"],
        "lead_predictions": view["lead_predictions"],
        "audiences": view["audiences"],
        "merges": view["merges"],
        "changes": view["changes"],
        "profile_api": served_by_profile_api(view["profile_id"]),
        "deliveries": deliveries,
        "held_by_destinations": synced_now,
        "processing_record": processing,
    }


def served_by_profile_api(profile_id: str) -> dict:
    """What the profile API serves about the person: the store's document and what the
    collector added since the last build."""
    from cdp.realtime.live import overlay_for
    from cdp.realtime.store import describe_store, open_store

    try:
        store = open_store()
        try:
            document, overlay = overlay_for(store, f"profile_id:{profile_id}")
        finally:
            store.close()
    except Exception as exc:  # the export goes on without it, and says why
        return {"store": describe_store(), "error": str(exc).splitlines()[0] if str(exc) else ""}
    return {"store": describe_store(), "document": document, "live": overlay}


def processing_record(con, profile_id: str) -> list[dict]:
    """Each delivery of the person joined with the change history: the attribute changes (from
    marts.customer_changes, with their source system) to the columns that sync sends, made since
    that sync's previous delivery of them, i.e. what the delivery carried out."""
    import pandas as pd

    from reverse_etl.config import load_syncs_reporting

    if not table_exists(con, "reverse_etl", "sync_deliveries"):
        return []
    mapped = pd.DataFrame(
        [(s.name, column) for s in load_syncs_reporting()[0].values() for column in s.columns],
        columns=["sync_name", "source_column"],
    )
    con.register("sync_columns", mapped)
    try:
        return dict_rows(
            con,
            f"""
            with deliveries as (
                select sync_name, destination, object, action, fields, delivered_at,
                    lag(delivered_at) over (partition by sync_name order by delivered_at)
                        as previous_delivery_at
                from {delivery_log(con)} where record_key = $pid
            )
            select d.sync_name, d.destination, d.object, d.action, d.fields, d.delivered_at,
                c.attribute, c.old_value, c.new_value, c.changed_at,
                c.source_system as changed_in, c.source_record_id as changed_record
            from deliveries d
            left join sync_columns m on m.sync_name = d.sync_name
            left join marts.customer_changes c on c.profile_id = $pid
                and c.attribute = m.source_column and c.changed_at <= d.delivered_at
                and (d.previous_delivery_at is null or c.changed_at > d.previous_delivery_at)
            order by d.delivered_at, d.sync_name, c.changed_at""",
            {"pid": profile_id},
        )
    finally:
        con.unregister("sync_columns")


def pii_columns(manifest: dict) -> list[dict]:
    """Every model column tagged `meta: {pii: true}`, from the dbt manifest."""
    columns = []
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or node["package_name"] != "cdp":
            continue
        for name, column in node["columns"].items():
            meta = {**column.get("meta", {}), **column.get("config", {}).get("meta", {})}
            if meta.get("pii"):
                columns.append(
                    {
                        "relation": f"{node['schema']}.{node['name']}",
                        "column": name,
                        "description": " ".join(column.get("description", "").split()),
                    }
                )
    return sorted(columns, key=lambda c: (c["relation"], c["column"]))


def pii_columns_markdown(manifest: dict) -> str:
    rows = pii_columns(manifest)
    lines = [
        "# Personal data columns",
        "",
        "Generated by `cdp privacy pii-columns --markdown` from the `meta: {pii: true}` tags in",
        "the models' yml; a test keeps it current. On targets not in var",
        "`cdp_production_targets` the macro `mask_pii` hashes every one of them.",
        "",
        f"{len(rows)} columns in {len({r['relation'] for r in rows})} models.",
        "",
        "| model | column | description |",
        "|---|---|---|",
    ]
    lines += [f"| {r['relation']} | {r['column']} | {r['description']} |" for r in rows]
    return "\n".join(lines) + "\n"
