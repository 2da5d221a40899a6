"""The local Dagster instance of `cdp run` and `cdp ui`: runs recorded through the pooled SQLite
event log are read by another process (the UI's), and a configuration made by hand stays."""

import os
import sqlite3
import subprocess
import sys

from dagster import AssetCheckResult, AssetKey, DagsterInstance, asset, asset_check, materialize

from orchestration.storage import (
    OPEN_RUN_DATABASES,
    LocalEventLogStorage,
    local_instance_config,
)


@asset
def counted() -> int:
    return 1


READ_IN_ANOTHER_PROCESS = """
import sys
from dagster import AssetKey, DagsterInstance
instance = DagsterInstance.from_config(sys.argv[1])
for run_id in sys.argv[2:]:
    print(run_id, len(instance.all_logs(run_id)))
latest = instance.get_latest_materialization_event(AssetKey("counted"))
print("latest", latest.run_id)
"""


def test_runs_recorded_with_pooled_connections_are_read_by_another_process(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    local_instance_config(home)
    runs = []
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, LocalEventLogStorage)
        # more runs than databases kept open: the oldest are closed and still read
        for _ in range(OPEN_RUN_DATABASES + 2):
            result = materialize([counted], instance=instance)
            assert result.success
            runs.append(result.run_id)
        assert len(instance.all_logs(runs[0])) == len(instance.all_logs(runs[-1])) > 5
        reader = subprocess.run(
            [sys.executable, "-c", READ_IN_ANOTHER_PROCESS, str(home), *runs],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "DAGSTER_HOME": str(home)},
        )
        counts = dict(line.split() for line in reader.stdout.splitlines())
        assert counts.pop("latest") == runs[-1]
        assert counts == {run_id: str(len(instance.all_logs(run_id))) for run_id in runs}
        # the history can still be wiped while connections are open
        instance.wipe()
        assert instance.get_latest_materialization_event(AssetKey("counted")) is None
        assert instance.all_logs(runs[-1]) == []


@asset_check(asset=counted)
def counted_is_positive() -> AssetCheckResult:
    return AssetCheckResult(passed=True)


def test_check_results_are_stored_and_the_index_tables_answer_as_they_are(tmp_path, monkeypatch):
    """The index's tables are looked up once when there (Dagster asks before every check
    result), and again while missing: one created later is found."""
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    local_instance_config(home)
    with DagsterInstance.from_config(str(home)) as instance:
        for _ in range(2):
            assert materialize([counted, counted_is_positive], instance=instance).success
        check_key = counted_is_positive.check_key
        executions = instance.event_log_storage.get_asset_check_execution_history(check_key, 10)
        assert len(executions) == 2
        storage = instance.event_log_storage
        assert storage.has_table("asset_check_executions")
        assert not storage.has_table("cdp_created_later")
        index = sqlite3.connect(storage.path_for_shard("index"))
        index.execute("create table cdp_created_later (id integer)")
        index.commit()
        index.close()
        assert storage.has_table("cdp_created_later")


def test_an_empty_config_is_filled_and_one_made_by_hand_stays(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "dagster.yaml").touch()  # what `make demo` used to leave
    assert "LocalEventLogStorage" in local_instance_config(empty).read_text()

    by_hand = tmp_path / "by_hand"
    by_hand.mkdir()
    (by_hand / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert local_instance_config(by_hand).read_text() == "telemetry:\n  enabled: false\n"
    with DagsterInstance.from_config(str(by_hand)) as instance:
        assert not isinstance(instance.event_log_storage, LocalEventLogStorage)
