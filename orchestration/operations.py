"""Operations: an alert when a run fails, and source freshness as asset checks.

- `run_failure_alert` posts a Slack-compatible message (job, failed steps, the error, a link to
  the run) to the webhook in CDP_ALERT_WEBHOOK_URL; without it, the failure is only logged.
- `source_freshness` checks, one per raw table whose dbt source declares a freshness: the age of
  its newest loaded row against `warn_after` and `error_after`. They run with every job that
  loads the table and on their own hourly schedule (on by default on PostgreSQL; on DuckDB off,
  since a reader would hold the file while a run wants to write it).
"""

from __future__ import annotations

import datetime as dt
import json
import os

import requests
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    ScheduleDefinition,
    asset_check,
    define_asset_job,
    run_failure_sensor,
)

from cdp.core.warehouse import target as warehouse_target
from cdp.ingest.load import raw_relation
from cdp.ingest.sources import TABLES, Table
from orchestration.assets.raw import raw_asset_key
from orchestration.project import dbt_project
from orchestration.resources import WarehouseResource

ALERT_URL_ENV = "CDP_ALERT_WEBHOOK_URL"
UI_URL_ENV = "CDP_DAGSTER_URL"  # where people open the Dagster UI, for the link in an alert
_PERIODS = {"minute": 60, "hour": 3600, "day": 86400}


def failure_message(context: RunFailureSensorContext) -> dict:
    """The alert: Slack's incoming-webhook format (`text` for notifications and clients without
    blocks, `blocks` for the message), which Teams and Mattermost bridges also accept."""
    run = context.dagster_run
    steps = [
        (event.step_key or "?", event.event_specific_data.error.message.strip().splitlines()[0])
        for event in context.get_step_failure_events()
        if event.event_specific_data and event.event_specific_data.error
    ]
    reason = steps[0][1] if steps else (context.failure_event.message or "the run failed")
    base = os.environ.get(UI_URL_ENV, "http://127.0.0.1:3000").rstrip("/")
    link = f"{base}/runs/{run.run_id}"
    failed = ", ".join(step for step, _ in steps) or "(before any step)"
    text = f"CDP run failed: job {run.job_name}, step {failed}: {reason}"
    return {
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f":red_circle: *CDP run failed*: {reason}"},
                "fields": [
                    {"type": "mrkdwn", "text": f"*Job*\n{run.job_name}"},
                    {"type": "mrkdwn", "text": f"*Failed step*\n{failed}"},
                ],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{link}|Open the run>"}},
        ],
        "job": run.job_name,
        "failed_steps": [step for step, _ in steps],
        "message": reason,
        "run_url": link,
    }


@run_failure_sensor(
    name="run_failure_alert",
    description=f"Posts every failed run to the webhook in {ALERT_URL_ENV} (Slack-compatible).",
    default_status=DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
)
def run_failure_alert(context: RunFailureSensorContext) -> None:
    url = os.environ.get(ALERT_URL_ENV)
    message = failure_message(context)
    if not url:
        context.log.warning(f"{message['text']} (set {ALERT_URL_ENV} to be alerted)")
        return
    # The URL is a secret (Slack's carries the token): never in a log line or an error.
    try:
        answer = requests.post(
            url, data=json.dumps(message), timeout=10, headers={"Content-Type": "application/json"}
        )
    except requests.RequestException as exc:
        raise RuntimeError(
            f"the alert webhook could not be reached: {type(exc).__name__}"
        ) from None
    if answer.status_code >= 300:
        raise RuntimeError(f"the alert webhook answered HTTP {answer.status_code}")


def _declared_freshness() -> dict[tuple[str, str], dict]:
    """(source, table) -> its dbt freshness config, from the manifest."""
    manifest = json.loads(dbt_project.manifest_path.read_text())
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


def _freshness_check(table: Table, freshness: dict) -> AssetChecksDefinition:
    warn, error = _seconds(freshness.get("warn_after")), _seconds(freshness.get("error_after"))

    @asset_check(
        asset=raw_asset_key(table),
        name="source_freshness",
        description=f"The newest row of raw.{table.key} is younger than the source's declared "
        "freshness (warn_after, error_after in its _sources.yml).",
        blocking=False,
    )
    def _check(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connection() as con:
            newest = con.execute(f"select max(_loaded_at) from {raw_relation(table)}").fetchone()[0]
        if newest is None:
            return AssetCheckResult(
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
            passed=not late,
            severity=AssetCheckSeverity.ERROR if late_error else AssetCheckSeverity.WARN,
            metadata={
                "newest_row_loaded_at": newest.isoformat(sep=" ", timespec="seconds"),
                "age_hours": round(age / 3600, 2),
                "warn_after_hours": round(warn / 3600, 2) if warn else None,
                "error_after_hours": round(error / 3600, 2) if error else None,
            },
        )

    return _check


_DECLARED = _declared_freshness()
freshness_checks = [
    _freshness_check(table, _DECLARED[(table.source, table.name)])
    for table in TABLES
    if (table.source, table.name) in _DECLARED
]

source_freshness_job = define_asset_job(
    "source_freshness",
    selection=AssetSelection.checks(*freshness_checks),
    description="Check every source's freshness, without loading anything.",
)

source_freshness_schedule = ScheduleDefinition(
    name="hourly_source_freshness",
    job=source_freshness_job,
    cron_schedule="5 * * * *",
    default_status=DefaultScheduleStatus.RUNNING
    if warehouse_target() == "postgres"
    else DefaultScheduleStatus.STOPPED,
)
