"""Domain ingest: one asset per source table (loads with Great Expectations checks and source
freshness), the declared systems' person relations, firmographics enrichment, and the sensor
that loads files as they land."""

from pathlib import Path

from dagster import Definitions

from orchestration.ingest.enrichment import company_firmographics, lookups_mostly_answered
from orchestration.ingest.freshness import (
    FRESHNESS_CHECK,
    declared_freshness,
    freshness_job,
    freshness_schedule,
)
from orchestration.ingest.landing import landing_folder_sensor, landing_job
from orchestration.ingest.raw import raw_asset_checks, raw_assets


def definitions(manifest_path: Path) -> Definitions:
    raw_checks = raw_asset_checks(declared_freshness(manifest_path))
    source_freshness = freshness_job(
        [key for check in raw_checks for key in check.check_keys if key.name == FRESHNESS_CHECK]
    )
    return Definitions(
        assets=[*raw_assets(), company_firmographics()],
        asset_checks=[*raw_checks, lookups_mostly_answered],
        jobs=[landing_job, source_freshness],
        schedules=[freshness_schedule(source_freshness)],
        sensors=[landing_folder_sensor],
    )
