"""The landing-folder sensor: it sees new files, asks for the right run, and that run loads them.

Runs after the pipeline tests (file order) because it adds a file to the session landing folder.
"""

import os
import shutil

import duckdb
from dagster import AssetKey, DagsterInstance, RunRequest, SkipReason, build_sensor_context

from tests.conftest import generate


def _evaluate(sensor, instance, defs, cursor):
    context = build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
    )
    return sensor(context), context.cursor


def test_sensor_loads_a_new_file_and_only_what_depends_on_it(full_run, landing, defs, tmp_path):
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    with DagsterInstance.ephemeral() as instance:
        # A first look (a new Dagster instance after a build, as `make ui` after `make demo`):
        # files the loader already read are no reason for a run.
        first, cursor = _evaluate(sensor, instance, defs, None)
        assert isinstance(first, SkipReason), first
        again, cursor = _evaluate(sensor, instance, defs, cursor)
        assert isinstance(again, SkipReason)

        generate(tmp_path, people=100, batch="2026-11-24", first_person=50_001)
        new_file = next((tmp_path / "web" / "events").iterdir())
        shutil.copy(new_file, landing / "web" / "events" / new_file.name)
        request, cursor = _evaluate(sensor, instance, defs, cursor)
        assert isinstance(request, RunRequest)
        assert new_file.name in request.tags["cdp/new_files"]
        selected = set(request.asset_selection)
        assert AssetKey(["web", "events"]) in selected
        assert AssetKey(["staging", "stg_web__events"]) in selected
        assert AssetKey(["crm", "contacts"]) not in selected
        assert AssetKey(["staging", "stg_crm__contacts"]) not in selected
        assert not any(key.path[0] == "syncs" for key in selected)  # never delivers

        con = duckdb.connect(os.environ["CDP_WAREHOUSE"], read_only=True)
        before = con.execute("select count(*) from staging.stg_web__events").fetchall()[0][0]
        con.close()
        result = defs.resolve_job_def("load_landed_files").execute_in_process(
            instance=instance, asset_selection=list(selected), tags=request.tags
        )
        assert result.success
        con = duckdb.connect(os.environ["CDP_WAREHOUSE"], read_only=True)
        after, from_file = con.execute(
            "select (select count(*) from staging.stg_web__events),"
            " (select count(*) from raw.web__events where _source_file like ?)",
            [f"%{new_file.name}"],
        ).fetchall()[0]
        con.close()
        assert from_file > 0
        assert after > before

        quiet, _ = _evaluate(sensor, instance, defs, cursor)
        assert isinstance(quiet, SkipReason)
