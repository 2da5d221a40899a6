"""The sensor that loads files as they land, and the job it starts."""

import hashlib
import json
from pathlib import Path

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)

from cdp.core.sql import table_exists
from cdp.core.warehouse import WAREHOUSE_ERRORS
from cdp.ingest.load import LOAD_FILES, landing_files
from cdp.ingest.sources import tables
from orchestration.groups import SYNC_ASSETS
from orchestration.ingest.raw import raw_asset_key
from orchestration.resources import WarehouseResource

landing_job = define_asset_job(
    "load_landed_files",
    selection=AssetSelection.groups("raw").downstream() - SYNC_ASSETS,
    description="Load new landing files and rebuild what depends on them.",
)


def _landing_files(landing: Path) -> dict[str, tuple[str, str]]:
    """File -> (signature, table key), built-in and declared tables alike."""
    found = {}
    for table in tables():
        for path in landing_files(table, landing):
            stat = path.stat()
            found[str(path.relative_to(landing))] = (
                f"{stat.st_size}:{stat.st_mtime_ns}",
                table.key,
            )
    return found


def _already_loaded(
    warehouse: WarehouseResource, files: dict[str, tuple[str, str]]
) -> dict[str, str]:
    """A first look (no cursor yet, e.g. `make ui` after `make demo`): the files the loader has
    already read, same table, name and size, count as seen, so nothing is rebuilt for them."""
    try:
        with warehouse.connection(read_only=True) as con:
            if not table_exists(con, "raw", "_load_files"):
                return {}
            read = {
                (table_key, Path(file_name).name, size)
                for table_key, file_name, size in con.execute(
                    f"select table_key, file_name, size_bytes from {LOAD_FILES}"
                ).fetchall()
            }
    except (*WAREHOUSE_ERRORS, OSError):  # no warehouse yet, or a run holds it: look at all
        return {}
    return {
        file: signature
        for file, (signature, table_key) in files.items()
        if (table_key, Path(file).name, int(signature.partition(":")[0])) in read
    }


@sensor(
    job=landing_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts a load when new or changed files appear in the landing folder.",
)
def landing_folder_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    landing = Path(warehouse.landing_dir)
    files = _landing_files(landing)
    seen = json.loads(context.cursor) if context.cursor else _already_loaded(warehouse, files)
    current = {file: signature for file, (signature, _) in files.items()}
    changed = sorted(f for f, sig in current.items() if seen.get(f) != sig)
    if not changed:
        context.update_cursor(json.dumps(current))  # a first look is remembered
        return SkipReason(f"no new files in {landing}")
    touched = sorted({files[f][1] for f in changed})
    run_key = hashlib.sha256(json.dumps({f: current[f] for f in changed}).encode()).hexdigest()
    context.update_cursor(json.dumps(current))
    raw_keys = [raw_asset_key(t) for t in tables() if t.key in touched]
    selection = None  # the whole job, when the sensor runs outside its code location
    if context.repository_def is not None:
        selection = list(
            (AssetSelection.assets(*raw_keys).downstream() - SYNC_ASSETS).resolve(
                context.repository_def.asset_graph
            )
        )
    return RunRequest(
        run_key=run_key,
        asset_selection=selection,
        tags={"cdp/new_files": ", ".join(changed)[:1000], "cdp/tables": ", ".join(touched)},
    )
