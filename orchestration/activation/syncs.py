"""Group `syncs`: one asset per reverse-ETL sync (reverse_etl/syncs/*.yml), downstream of the dbt
model it reads, with the run's counts as metadata and a check on records the destination
rejected."""

import logging

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    Config,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    define_asset_job,
    sensor,
)

from orchestration.groups import SYNC_ASSETS, SYNCS
from orchestration.resources import WarehouseResource
from orchestration.transform.dbt import dbt_model_key
from reverse_etl.config import SyncConfig, load_syncs_reporting
from reverse_etl.engine import (
    CONSENTS,
    MEMBERSHIPS,
    SCHEMA,
    ensure_state,
    pending_trigger,
    run_sync,
)


class SyncRunConfig(Config):
    full_resync: bool = False  # forget what the destination confirmed and send every row
    dry_run: bool = False  # count and sample the changes, send nothing


def sync_asset_key(sync: SyncConfig) -> AssetKey:
    return AssetKey(["syncs", sync.name])


def _upstream(sync: SyncConfig, dbt: AssetsDefinition) -> list[AssetKey]:
    """The model a sync reads, the consents that gate it when it declares a purpose and the
    memberships that filter it when it targets an audience."""
    names = [sync.source.split(".")[-1]]
    if sync.gated:
        names.append(CONSENTS.split(".")[-1])
    if sync.audience:
        names.append(MEMBERSHIPS.split(".")[-1])
    return [dbt_model_key(dbt, m) for m in names]


def _sync_asset(sync: SyncConfig, dbt: AssetsDefinition) -> AssetsDefinition:
    @asset(
        key=sync_asset_key(sync),
        group_name=SYNCS,
        deps=_upstream(sync, dbt),
        kinds={sync.destination, "python"},
        description=sync.description or f"{sync.source} to {sync.destination}",
        metadata={
            "destination": sync.destination,
            "object": sync.object,
            "mode": sync.mode,
            "purpose": sync.purpose if not sync.gated else f"{sync.purpose} by {sync.channel}",
            "definition": str(sync.path),
        },
    )
    def _run(
        context: AssetExecutionContext, config: SyncRunConfig, warehouse: WarehouseResource
    ) -> MaterializeResult:
        with warehouse.connection() as con:
            try:
                result = run_sync(con, sync, full_resync=config.full_resync, dry_run=config.dry_run)
            except Exception as exc:
                raise Failure(description=f"sync {sync.name} failed: {exc}") from exc
        context.log.info(
            f"{sync.name}: confirmed {result.added} added, {result.changed} changed, "
            f"{result.removed} removed, {result.withdrawn} withdrawn; {result.failed} rejected"
        )
        return MaterializeResult(
            metadata={
                key: getattr(result, key)
                for key in (
                    "added",
                    "changed",
                    "removed",
                    "withdrawn",
                    "merged",
                    "absent",
                    "unchanged",
                    "planned",
                    "failed",
                    "invalid",
                    "calls",
                    "retries",
                )
            }
            | {"status": result.status, "run_id": result.run_id}
        )

    return _run


def _sync_check(sync: SyncConfig):
    @asset_check(
        asset=sync_asset_key(sync),
        name="no_open_sync_errors",
        description="Records the destination rejected or that were invalid; they are "
        "retried on every run until they go through.",
    )
    def _check(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connection() as con:
            ensure_state(con)
            rows = con.execute(
                f"select error_kind, count(*) from {SCHEMA}.sync_errors "
                "where sync_name = ? group by 1",
                [sync.name],
            ).fetchall()
        counts = dict(rows)
        return AssetCheckResult(
            passed=not counts,
            severity=AssetCheckSeverity.WARN,
            metadata={"rejected": counts.get("rejected", 0), "invalid": counts.get("invalid", 0)},
        )

    return _check


def loaded_syncs() -> dict[str, SyncConfig]:
    """The sync definitions; an invalid one is logged and left out, the others load and run."""
    syncs, invalid = load_syncs_reporting()
    for problem in invalid:
        logging.getLogger(__name__).warning("skipped invalid sync definition: %s", problem)
    return syncs


def sync_assets(syncs: dict[str, SyncConfig], dbt: AssetsDefinition) -> list[AssetsDefinition]:
    return [_sync_asset(s, dbt) for s in syncs.values()]


def sync_checks(syncs: dict[str, SyncConfig]) -> list:
    return [_sync_check(s) for s in syncs.values()]


def _trigger_sensor(sync: SyncConfig, dbt: AssetsDefinition):
    """Starts the sync once the models it reads have materialized again and its trigger holds
    (trigger columns changed for records the destination holds, or new records). Off by
    default, like the schedules: turn it on once the destination's credentials are set."""
    upstream = _upstream(sync, dbt)
    what = " or ".join(
        ([f"a change of {', '.join(sync.trigger.columns)}"] if sync.trigger.columns else [])
        + (["new records"] if sync.trigger.new_records else [])
    )

    @sensor(
        name=f"sync_{sync.name}_on_change",
        description=f"Runs sync {sync.name} after {', '.join(k.path[-1] for k in upstream)} "
        f"materialize, on {what}.",
        asset_selection=[sync_asset_key(sync)],
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.STOPPED,
    )
    def _watch(context: SensorEvaluationContext, warehouse: WarehouseResource):
        events = [context.instance.get_latest_materialization_event(key) for key in upstream]
        latest = max((event.timestamp for event in events if event), default=None)
        if latest is None or latest <= float(context.cursor or 0):
            return SkipReason(
                f"no new materialization of {', '.join(k.path[-1] for k in upstream)}"
            )
        try:
            with warehouse.connection() as con:
                pending = pending_trigger(con, sync)
        except Exception as exc:  # e.g. a run is writing the warehouse: look again next tick
            return SkipReason(f"the warehouse cannot be read now ({type(exc).__name__}); retrying")
        context.update_cursor(str(latest))
        if not pending:
            return SkipReason(f"models rebuilt; trigger not met ({what})")
        return RunRequest(
            run_key=f"{sync.name}:{latest}",
            asset_selection=[sync_asset_key(sync)],
            tags={"cdp/trigger": f"{pending} records: {what}"},
        )

    return _watch


def sync_trigger_sensors(syncs: dict[str, SyncConfig], dbt: AssetsDefinition) -> list:
    return [_trigger_sensor(s, dbt) for s in syncs.values() if s.trigger]


def sync_schedules(syncs: dict[str, SyncConfig]) -> list[ScheduleDefinition]:
    return [
        ScheduleDefinition(
            name=f"sync_{sync.name}",
            cron_schedule=sync.schedule,
            execution_timezone="Europe/Berlin",
            target=AssetSelection.assets(sync_asset_key(sync)),
            default_status=DefaultScheduleStatus.STOPPED,  # turn on once credentials are set
        )
        for sync in syncs.values()
        if sync.schedule
    ]


syncs_job = define_asset_job(
    "syncs",
    selection=SYNC_ASSETS,
    description="Run every reverse-ETL sync; only what changed is sent.",
)
