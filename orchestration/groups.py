"""Asset groups that jobs of several domains select by."""

from dagster import AssetSelection

SYNCS = "syncs"
# Syncs deliver to outside systems: they run in their own job, on their own schedules.
SYNC_ASSETS = AssetSelection.groups(SYNCS)
