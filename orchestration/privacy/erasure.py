"""Data-subject erasure as a Dagster job: erase every open request (destinations, then the
warehouse in one transaction), rebuild the dbt models from what is left, verify by scanning every
table. A sensor starts it when `cdp privacy erase --no-run` (or anyone) records a request. Run
config and op outputs carry request ids only, so Dagster's storage holds nothing of the person."""

import json
import time

from dagster import (
    DefaultSensorStatus,
    Failure,
    In,
    MetadataValue,
    OpExecutionContext,
    Out,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    job,
    op,
    sensor,
)
from dagster_dbt import DbtCliResource

from cdp.core.build_state import build_whole_project, project_settings
from cdp.core.config import dbt_log_file_args
from cdp.privacy import erasure
from orchestration.project import prepared_dbt_project
from orchestration.resources import WarehouseResource
from orchestration.transform.dbt import BUILD


@op(out=Out(list), description="Erase every open request in destinations and the warehouse.")
def erase_requested_people(context: OpExecutionContext, warehouse: WarehouseResource) -> list:
    erased, failed = [], []
    with warehouse.connection() as con:
        erasure.ensure_tables(con)
        for request_id in erasure.open_requests(con):
            result = erasure.process_request(con, request_id)
            context.log.info(
                f"{request_id}: {result.status}, {result.rows_deleted} rows deleted, "
                f"{result.rows_pseudonymized} pseudonymized, {result.destination_deletes} "
                f"destination deletes, {result.collected_events_deleted} collected events "
                f"deleted {result.message}"
            )
            (erased if result.status == "erased" else failed).append(result)
    if failed:
        # The warehouse of a failed request is untouched; the next run retries its destinations.
        raise Failure(
            description="; ".join(f"{r.request_id}: {r.message}" for r in failed),
            metadata={"erased": [r.request_id for r in erased]},
        )
    return [r.request_id for r in erased]


@op(
    ins={"erased": In(list)},
    out=Out(list),
    description="dbt build of what the erasure changed, over what is left.",
)
def rebuild_models(
    context: OpExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    erased: list,
) -> list:
    if not erased:
        context.log.info("nothing erased: no rebuild")
        return erased
    # What the erased rows changed, as a run would build it (cdp.core.build_state): the sources
    # they were deleted from and everything below. The rest holds nothing of them: the erasure
    # deleted their rows from every table, and verify_erasure scans them all.
    project = prepared_dbt_project()
    manifest = json.loads(project.manifest_path.read_text(encoding="utf-8"))

    def run_dbt(selection: list[str]):
        invocation = dbt.cli(
            [*BUILD, *selection, *dbt_log_file_args()], manifest=manifest, raise_on_error=True
        ).wait()
        return invocation.get_artifact("run_results.json")

    recorded = build_whole_project(
        warehouse.connection, manifest, project_settings(project.project_dir, BUILD), run_dbt
    )
    context.log.info(
        "dbt: nothing the erasure changed is built by dbt"
        if recorded is None
        else f"dbt: {recorded} nodes rebuilt from what is left and recorded"
    )
    return erased


@op(ins={"erased": In(list)}, description="Scan every table for what is left of each person.")
def verify_erasure(context: OpExecutionContext, warehouse: WarehouseResource, erased: list):
    incomplete = {}
    with warehouse.connection() as con:
        for request_id in erased:
            remaining = erasure.verify(con, request_id)
            if remaining:
                incomplete[request_id] = remaining
    if incomplete:
        raise Failure(
            description=f"rows still name erased people: {incomplete}",
            metadata={"remaining": MetadataValue.json(incomplete)},
        )
    context.log.info(f"verified: {len(erased)} request(s), nothing left in any table")


@job(
    name="privacy_erasure",
    description="Erase the people of every open erasure request everywhere, rebuild, verify.",
)
def privacy_erasure_job():
    verify_erasure(rebuild_models(erase_requested_people()))


@sensor(
    job=privacy_erasure_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts the erasure job when erasure requests are open.",
)
def erasure_request_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    try:
        with warehouse.connection(read_only=True) as con:
            open_ids = erasure.open_requests(con)
    except Exception as exc:  # a DuckDB file in use or missing, a database down
        return SkipReason(f"warehouse busy or missing: {exc}")
    if not open_ids:
        return SkipReason("no open erasure requests")
    # A request whose destinations failed stays open: the hour in the key retries it hourly.
    hour = int(time.time() // 3600)
    return RunRequest(
        run_key=f"{'+'.join(open_ids)}@{hour}", tags={"cdp/erasure_requests": str(len(open_ids))}
    )
