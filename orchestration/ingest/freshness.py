"""Source freshness as an asset check of each raw table whose dbt source declares a freshness
(in the table's check step, orchestration.ingest.raw): the age of its newest loaded row against
`warn_after` and `error_after`. They run with every job that loads the table and on their own
hourly schedule (on by default on PostgreSQL; on DuckDB off, since a reader would hold the file
while a run wants to write it)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    define_asset_job,
)

from cdp.core.warehouse import target as warehouse_target
from cdp.ingest.load import raw_relation
from cdp.ingest.sources import Table

_PERIODS = {"minute": 60, "hour": 3600, "day": 86400}


def declared_freshness(manifest_path: Path) -> dict[tuple[str, str], dict]:
    """(source, table) -> its dbt freshness config, from the manifest."""
    manifest = json.loads(manifest_path.read_text())
    found = {}
    for node in manifest.get("sources", {}).values():
        freshness = node.get("freshness") or node.get("config", {}).get("freshness") or {}
        if freshness.get("warn_after", {}).get("count") or freshness.get("error_after", {}).get(
            "count"
        ):
            found[(node["source_name"], node["name"])] = freshness
    return found


def _seconds(after: dict | None) -> float | None:
    if not after or not after.get("count"):
        return None
    return float(after["count"]) * _PERIODS[after.get("period", "day")]


FRESHNESS_CHECK = "source_freshness"


def freshness_check_spec(table: Table, asset_key: AssetKey) -> AssetCheckSpec:
    return AssetCheckSpec(
        FRESHNESS_CHECK,
        asset=asset_key,
        description=f"The newest row of raw.{table.key} is younger than the source's declared "
        "freshness (warn_after, error_after in its _sources.yml).",
        blocking=False,
    )


def freshness_result(con, table: Table, freshness: dict, asset_key: AssetKey) -> AssetCheckResult:
    """The age of the table's newest loaded row graded against `freshness` (dbt's config)."""
    warn, error = _seconds(freshness.get("warn_after")), _seconds(freshness.get("error_after"))
    newest = con.execute(f"select max(_loaded_at) from {raw_relation(table)}").fetchone()[0]
    if newest is None:
        return AssetCheckResult(
            asset_key=asset_key,
            check_name=FRESHNESS_CHECK,
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            description="nothing has been loaded yet",
        )
    if newest.tzinfo is not None:
        newest = newest.astimezone(dt.UTC).replace(tzinfo=None)
    age = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - newest).total_seconds()
    late_error = error is not None and age > error
    late = late_error or (warn is not None and age > warn)
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=FRESHNESS_CHECK,
        passed=not late,
        severity=AssetCheckSeverity.ERROR if late_error else AssetCheckSeverity.WARN,
        metadata={
            "newest_row_loaded_at": newest.isoformat(sep=" ", timespec="seconds"),
            "age_hours": round(age / 3600, 2),
            "warn_after_hours": round(warn / 3600, 2) if warn else None,
            "error_after_hours": round(error / 3600, 2) if error else None,
        },
    )


def freshness_job(check_keys: list[AssetCheckKey]):
    return define_asset_job(
        "source_freshness",
        selection=AssetSelection.checks(*check_keys),
        description="Check every source's freshness, without loading anything.",
    )


def freshness_schedule(job) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="hourly_source_freshness",
        job=job,
        cron_schedule="5 * * * *",
        default_status=DefaultScheduleStatus.RUNNING
        if warehouse_target() == "postgres"
        else DefaultScheduleStatus.STOPPED,
    )
