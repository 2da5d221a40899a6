"""The one Definitions object of the code location."""

from dagster import Definitions, in_process_executor

from orchestration.assets.dbt import cdp_dbt_models
from orchestration.assets.enrichment import company_firmographics, lookups_mostly_answered
from orchestration.assets.identity import matcher_assets
from orchestration.assets.ml import customer_predictions, models_beat_naive_baselines
from orchestration.assets.raw import raw_asset_checks, raw_assets
from orchestration.assets.syncs import sync_assets, sync_checks, sync_trigger_sensors
from orchestration.operations import (
    freshness_checks,
    run_failure_alert,
    source_freshness_job,
    source_freshness_schedule,
)
from orchestration.privacy import erasure_request_sensor, privacy_erasure_job
from orchestration.resources import build_resources
from orchestration.schedules import (
    daily_full_graph,
    full_graph_job,
    landing_folder_sensor,
    landing_job,
    sync_schedules,
    syncs_job,
)

defs = Definitions(
    assets=[
        *raw_assets,
        company_firmographics,
        cdp_dbt_models,
        *matcher_assets,
        customer_predictions,
        *sync_assets,
    ],
    asset_checks=[
        *raw_asset_checks,
        lookups_mostly_answered,
        models_beat_naive_baselines,
        *sync_checks,
        *freshness_checks,
    ],
    jobs=[full_graph_job, landing_job, syncs_job, privacy_erasure_job, source_freshness_job],
    schedules=[daily_full_graph, *sync_schedules, source_freshness_schedule],
    sensors=[
        landing_folder_sensor,
        erasure_request_sensor,
        run_failure_alert,
        *sync_trigger_sensors,
    ],
    resources=build_resources(),
    # DuckDB allows one writing process: steps run one after another in the run's process.
    executor=in_process_executor,
)
