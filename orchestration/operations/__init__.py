"""Domain operations: the whole graph every night (syncs apart), built in full with every
test (runs in between build what changed), and an alert when a run fails."""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    ScheduleDefinition,
    define_asset_job,
)

from cdp.core.build_state import FULL_BUILD_TAG
from orchestration.groups import SYNC_ASSETS
from orchestration.operations.alerts import run_failure_alert

full_graph_job = define_asset_job(
    "full_graph",
    selection=AssetSelection.all() - SYNC_ASSETS,
    description="Load every source, build every dbt model and run all checks.",
)

daily_full_graph = ScheduleDefinition(
    name="daily_full_graph",
    job=full_graph_job,
    cron_schedule="0 3 * * *",
    execution_timezone="Europe/Berlin",
    default_status=DefaultScheduleStatus.RUNNING,
    tags={FULL_BUILD_TAG: "true"},
)


def definitions() -> Definitions:
    return Definitions(
        jobs=[full_graph_job], schedules=[daily_full_graph], sensors=[run_failure_alert]
    )
