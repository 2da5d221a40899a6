"""The one Definitions object of the code location."""

from dagster import Definitions, in_process_executor

from orchestration.assets.dbt import cdp_dbt_models
from orchestration.assets.raw import raw_asset_checks, raw_assets
from orchestration.resources import build_resources
from orchestration.schedules import (
    daily_full_graph,
    full_graph_job,
    landing_folder_sensor,
    landing_job,
)

defs = Definitions(
    assets=[*raw_assets, cdp_dbt_models],
    asset_checks=raw_asset_checks,
    jobs=[full_graph_job, landing_job],
    schedules=[daily_full_graph],
    sensors=[landing_folder_sensor],
    resources=build_resources(),
    # DuckDB allows one writing process: steps run one after another in the run's process.
    executor=in_process_executor,
)
