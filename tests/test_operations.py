"""Operations in Dagster: a failed sync run (a refused token) fails its asset and is posted to
a real HTTP receiver as a Slack-compatible alert; source freshness checks grade the age of the
newest loaded row against the sources' declared freshness."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest
from dagster import DagsterInstance, build_run_status_sensor_context, materialize

from cdp.ingest.sources import tables
from orchestration.activation.syncs import loaded_syncs, sync_asset_key, sync_assets
from orchestration.ingest.freshness import FRESHNESS_CHECK, declared_freshness, freshness_result
from orchestration.ingest.raw import raw_asset_key
from orchestration.operations.alerts import run_failure_alert
from orchestration.project import prepared_dbt_project
from orchestration.resources import WarehouseResource
from orchestration.transform.dbt import dbt_models
from reverse_etl.destinations.hubspot.emulator import HubSpotEmulator

SYNCS = loaded_syncs()


class Receiver:
    """An HTTP endpoint that keeps every JSON body posted to it (a Slack incoming webhook)."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def small_warehouse(tmp_path):
    path = tmp_path / "ops.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute("""create table marts.customers as
        select 'p_' || i as profile_id, 'kunde' || i || '@example.org' as email,
            'Anna' as first_name, 'Muster' as last_name, null as phone, 'Köln' as city,
            '50667' as postal_code, 'DE' as country_code, null as company_name,
            'Lead' as crm_lead_status, true as is_identified
        from range(1, 21) t(i)""")
    con.execute("""create table marts.customer_consents as
        select 'p_1' as profile_id, 'sales_contact' as purpose, 'email' as channel,
            false as is_granted""")
    con.close()
    return WarehouseResource(path=str(path), landing_dir=str(tmp_path))


def test_a_refused_token_fails_the_sync_asset_and_the_alert_reaches_the_webhook(
    small_warehouse, monkeypatch
):
    receiver = Receiver()
    monkeypatch.setenv("CDP_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("CDP_DAGSTER_URL", "http://dagster.example:3000/")
    monkeypatch.setenv("HUBSPOT_TOKEN", "expired-token")
    try:
        with HubSpotEmulator() as hubspot, DagsterInstance.ephemeral() as instance:
            monkeypatch.setenv("HUBSPOT_BASE_URL", hubspot.url)
            result = materialize(
                [_asset_of("hubspot_contacts")],
                instance=instance,
                resources={"warehouse": small_warehouse},
                raise_on_error=False,
            )
            assert not result.success
            assert len(hubspot.requests) == 1  # the 401 stopped the run at its first call
            failure = result.get_run_failure_event()
            context = build_run_status_sensor_context(
                sensor_name="run_failure_alert",
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                dagster_event=failure,
            ).for_run_failure()
            run_failure_alert(context)
        [alert] = receiver.received
    finally:
        receiver.close()
    assert alert["job"] == result.dagster_run.job_name
    assert alert["failed_steps"] == ["syncs__hubspot_contacts"]
    assert "hubspot refused the credentials" in alert["message"]
    assert "HTTP 401" in alert["message"] and "expired-token" not in json.dumps(alert)
    assert alert["run_url"] == f"http://dagster.example:3000/runs/{result.run_id}"
    assert alert["text"].startswith("CDP run failed: job ")
    assert alert["blocks"][0]["type"] == "section"
    con = duckdb.connect(small_warehouse.path, read_only=True)
    status = con.execute("select status, calls from reverse_etl.sync_runs").fetchall()
    con.close()
    assert status == [("failed", 1)]


def _asset_of(name):
    """The sync's asset as the code location builds it, without its resources bound."""
    return sync_assets({name: SYNCS[name]}, dbt_models(prepared_dbt_project()))[0]


@pytest.mark.parametrize(
    ("age", "passed", "severity"),
    [
        (dt.timedelta(hours=1), True, "WARN"),
        (dt.timedelta(days=3), False, "WARN"),
        (dt.timedelta(days=8), False, "ERROR"),
        (None, False, "ERROR"),
    ],
)
def test_source_freshness_grades_the_newest_loaded_row(tmp_path, age, passed, severity):
    """crm declares warn after 2 days and error after 7 (models/staging/crm/_crm__sources.yml)."""
    path = tmp_path / "fresh.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema raw")
    con.execute("create table raw.crm__accounts (account_id varchar, _loaded_at timestamp)")
    if age is not None:
        loaded = dt.datetime.now(dt.UTC).replace(tzinfo=None) - age
        con.execute("insert into raw.crm__accounts values ('a1', ?)", [loaded])
    con.close()
    declared = declared_freshness(prepared_dbt_project().manifest_path)[("crm", "accounts")]
    table = next(t for t in tables() if t.key == "crm__accounts")
    warehouse = WarehouseResource(path=str(path), landing_dir=str(tmp_path))
    with warehouse.connection(read_only=True) as con:
        result = freshness_result(con, table, declared, raw_asset_key(table))
    assert (result.passed, result.severity.value) == (passed, severity)
    assert result.check_name == FRESHNESS_CHECK
    if age is not None:
        assert result.metadata["warn_after_hours"].value == 48
        assert result.metadata["error_after_hours"].value == 168


def test_every_declared_source_freshness_is_an_asset_check(defs):
    """Each declared freshness is a check of its raw table, run by the freshness job alone
    (in the table's check step, without its expectations)."""
    keys = {k for k in defs.resolve_asset_graph().asset_check_keys if k.name == FRESHNESS_CHECK}
    declared = declared_freshness(prepared_dbt_project().manifest_path)
    assert {tuple(k.asset_key.path) for k in keys} == set(declared) and len(keys) >= 10
    job = defs.resolve_job_def("source_freshness")
    assert job.asset_layer.asset_graph.asset_check_keys == keys


def test_a_triggered_sync_runs_when_its_trigger_columns_change_not_on_every_rebuild(
    small_warehouse, monkeypatch, defs
):
    from dagster import AssetKey, AssetMaterialization, RunRequest, SkipReason, build_sensor_context

    from reverse_etl.engine import run_sync

    sync = SYNCS["hubspot_contacts"]
    assert sync.trigger.columns == ["crm_lead_status"]
    watch = defs.resolve_sensor_def("sync_hubspot_contacts_on_change")
    monkeypatch.setenv("HUBSPOT_TOKEN", "test-token")
    with HubSpotEmulator() as hubspot, DagsterInstance.ephemeral() as instance:
        monkeypatch.setenv("HUBSPOT_BASE_URL", hubspot.url)
        cursor = None

        def tick(rebuilt: bool):
            nonlocal cursor
            if rebuilt:  # what the dbt asset reports when the model is built again
                instance.report_runless_asset_event(
                    AssetMaterialization(asset_key=AssetKey(["marts", "customers"]))
                )
            context = build_sensor_context(
                instance=instance, cursor=cursor, resources={"warehouse": small_warehouse}
            )
            answer = watch(context)
            cursor = context.cursor
            return answer

        assert isinstance(tick(rebuilt=False), SkipReason)  # nothing materialized yet
        con = duckdb.connect(small_warehouse.path)
        run_sync(con, sync)  # the destination holds everyone
        con.execute("update marts.customers set city = 'Bonn' where profile_id = 'p_2'")
        con.close()
        skipped = tick(rebuilt=True)
        assert isinstance(
            skipped, SkipReason
        ) and "trigger not met (a change of crm_lead_status)" in str(skipped.skip_message)
        assert isinstance(tick(rebuilt=False), SkipReason)  # no new materialization
        con = duckdb.connect(small_warehouse.path)
        con.execute("update marts.customers set crm_lead_status = 'SQL' where profile_id = 'p_3'")
        con.close()
        request = tick(rebuilt=True)
        assert isinstance(request, RunRequest)
        assert request.asset_selection == [sync_asset_key(sync)]
        assert request.tags["cdp/trigger"] == "1 records: a change of crm_lead_status"


def test_the_dagster_ui_stops_with_everything_it_started_on_sigterm(tmp_path):
    """Started as a script or with `&` would start it (SIGINT ignored), then stopped by SIGTERM
    as a service manager would: nothing of it is left within the grace period."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import requests

    from cdp.core.local_servers import free_port

    port = free_port()
    cdp = str(Path(sys.executable).parent / "cdp")
    ui = subprocess.Popen(
        [cdp, "ui", "--port", str(port), "--grace", "20"],
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(1)
        else:
            pytest.fail("the Dagster UI did not come up")
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=40) == 0
    finally:
        if ui.poll() is None:
            ui.kill()
    left = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", left.stdout
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
