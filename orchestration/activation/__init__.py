"""Domain activation: one asset per reverse-ETL sync (reverse_etl/syncs/*.yml or CDP_SYNCS_DIR)
with a check on rejected records, the `syncs` job, each sync's schedule and trigger sensor."""

from dagster import AssetsDefinition, Definitions

from orchestration.activation.syncs import (
    loaded_syncs,
    sync_assets,
    sync_checks,
    sync_schedules,
    sync_trigger_sensors,
    syncs_job,
)


def definitions(dbt: AssetsDefinition) -> Definitions:
    syncs = loaded_syncs()
    return Definitions(
        assets=sync_assets(syncs, dbt),
        asset_checks=sync_checks(syncs),
        jobs=[syncs_job],
        schedules=sync_schedules(syncs),
        sensors=sync_trigger_sensors(syncs, dbt),
    )
