"""The sync assets in the Dagster graph, run for real against the emulators on the warehouse
the session's full run built: the second run sends nothing."""

from contextlib import ExitStack

from dagster import AssetKey, DagsterInstance

from reverse_etl.config import load_syncs
from reverse_etl.demo import received, start_emulators


def test_sync_assets_sit_downstream_of_their_models(defs):
    graph = defs.resolve_asset_graph()
    for sync in load_syncs().values():
        node = graph.get(AssetKey(["syncs", sync.name]))
        assert node.group_name == "syncs"
        assert AssetKey(["marts", sync.source.split(".")[-1]]) in node.parent_keys
    # The daily graph and the landing job never deliver to outside systems.
    for job_name in ("full_graph", "load_landed_files"):
        selected = defs.resolve_job_def(job_name).asset_layer.executable_asset_keys
        assert not any(key.path[0] == "syncs" for key in selected), job_name


def test_syncs_job_delivers_golden_records_then_sends_nothing(
    full_run, defs, monkeypatch, tmp_path
):
    monkeypatch.setenv("CDP_EXPORT_DIR", str(tmp_path / "exports"))
    with ExitStack() as stack:
        emulators = start_emulators(stack)
        instance = stack.enter_context(DagsterInstance.ephemeral())
        job = defs.resolve_job_def("syncs")
        first = job.execute_in_process(instance=instance)
        assert first.success
        counts = received(emulators)
        assert counts["hubspot contacts"] > 5000
        assert counts["salesforce contacts"] > 1000
        assert counts["braze users"] > 1000
        assert counts["webhook records"] > 5000
        checks = first.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks)
        second = job.execute_in_process(instance=instance)
        calls = {
            e.asset_key.path[-1]: e.materialization.metadata["calls"].value
            for e in second.get_asset_materialization_events()
        }
        assert set(calls) == set(load_syncs())
        assert set(calls.values()) == {0}
