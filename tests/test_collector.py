"""The event collector (`cdp serve collect`) as a real uvicorn process: Segment's official Python
SDK against it, the API's limits and errors, de-duplication, clock-skew correction, and a
`kill -9` under load that loses no acknowledged event and leaves no duplicate in the warehouse.
"""

import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import requests

from cdp.core.local_servers import free_port, wait_until_up
from cdp.core.warehouse import connect_warehouse
from cdp.ingest.load import load_table
from cdp.ingest.sources import table
from cdp.realtime.collector.app import web_events_landing
from tests.conftest import dbt_build

WRITE_KEY = "test-write-key"
CDP = str(Path(sys.executable).parent / "cdp")


class Server:
    """`cdp serve collect` in its own process, on a landing folder of its own."""

    def __init__(self, folder: Path, segment_seconds: float = 0.3, store: str | None = None):
        self.folder, self.port = folder, free_port()
        self.store = store or str(folder / "profiles.sqlite")  # the hot path's
        self.landing = folder / "landing"
        self.url = f"http://127.0.0.1:{self.port}"
        self.segment_seconds = segment_seconds
        self.process = None

    def start(self) -> "Server":
        self.process = subprocess.Popen(
            [CDP, "serve", "collect", "--port", str(self.port)]
            + ["--segment-seconds", str(self.segment_seconds)],
            env={
                **os.environ,
                "CDP_LANDING": str(self.landing),
                "CDP_COLLECTOR_WRITE_KEYS": f"other-key,{WRITE_KEY}",
                "CDP_PROFILE_STORE": self.store,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_until_up(f"{self.url}/health", self.process)
        return self

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def rows(self) -> list[dict]:
        """Every landed event, in file order."""
        folder = web_events_landing(self.landing)
        return [
            json.loads(line)
            for path in sorted(folder.glob("*.jsonl"))
            for line in path.read_text().splitlines()
        ]

    def wait_for_rows(self, count: int, timeout: float = 15) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.rows()
            if len(rows) >= count:
                return rows
            time.sleep(0.1)
        return self.rows()


@pytest.fixture
def server(tmp_path):
    started = Server(tmp_path).start()
    yield started
    started.stop()


def _post(server: Server, call: str, body, key: str | None = WRITE_KEY, **kwargs):
    auth = (key, "") if key else None
    return requests.post(f"{server.url}/v1/{call}", json=body, auth=auth, timeout=10, **kwargs)


def test_the_official_segment_sdk_delivers_every_call_into_the_raw_loader(server, tmp_path):
    from segment.analytics.client import Client

    errors = []
    client = Client(
        WRITE_KEY,
        host=server.url,
        on_error=lambda error, batch: errors.append(error),
        upload_interval=0.05,
        max_retries=1,
    )
    client.identify("u-1", {"email": "Anna.Mueller@Example.com", "firstName": "Anna"})
    client.track("u-1", "Order Completed", {"revenue": 12.5})
    client.page("u-1", "Docs", "Intro", {"path": "/docs"})
    client.screen("u-1", "App", "Home")
    client.group("u-1", "acme", {"name": "ACME"})
    client.alias("anon-1", "u-1")
    client.track(anonymous_id="anon-2", event="Product Viewed")
    client.flush()
    client.join()
    assert errors == []

    rows = server.wait_for_rows(7)
    assert sorted(r["type"] for r in rows) == sorted(
        ["identify", "track", "page", "screen", "group", "alias", "track"]
    )
    by_type = {r["type"]: r for r in rows}
    assert by_type["identify"]["traits"]["email"] == "Anna.Mueller@Example.com"
    assert by_type["group"]["group_id"] == "acme"
    assert by_type["alias"]["previous_id"] == "anon-1"
    assert by_type["page"]["properties"]["path"] == "/docs"
    assert {r["event"] for r in rows if r["type"] == "track"} == {
        "Order Completed",
        "Product Viewed",
    }
    assert all(r["context"]["library"]["name"] == "analytics-python" for r in rows)

    # The landed segment is an ordinary web events file for the raw loader.
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
    result = load_table(con, table("web__events"), server.landing)
    assert (result.rows_new, result.rows_quarantined, result.files_rejected) == (7, 0, {})
    loaded = con.execute("select count(distinct event_id) from raw.web__events").fetchall()
    assert loaded == [(7,)]
    con.close()
    warehouse = str(tmp_path / "wh.duckdb")
    dbt_build("--select", "stg_web__events", env={"CDP_WAREHOUSE": warehouse}, command="run")
    with duckdb.connect(warehouse, read_only=True) as con:
        staged = con.execute(
            "select event_type, anonymous_id, shop_customer_id, email, first_name"
            " from staging.stg_web__events order by event_type, anonymous_id"
        ).fetchall()
    # a call with a user id only counts as that user's browser; Segment's camelCase traits
    identify = next(row for row in staged if row[0] == "identify")
    assert identify == ("identify", "user:u-1", "u-1", "anna.mueller@example.com", "Anna")
    assert ("track", "anon-2", None, None, None) in staged


def test_the_api_answers_bad_requests_with_one_clear_json_error(server):
    track = {"userId": "u-1", "event": "Clicked"}
    assert _post(server, "track", track, key=None).status_code == 401
    assert _post(server, "track", track, key="wrong").status_code == 401
    assert _post(server, "track", {**track, "writeKey": WRITE_KEY}, key=None).status_code == 200

    missing_ids = _post(server, "track", {"event": "Clicked"})
    assert missing_ids.status_code == 400
    assert "userId or anonymousId" in missing_ids.json()["message"]
    assert "event is required" in _post(server, "track", {"userId": "u-1"}).json()["message"]
    assert _post(server, "group", {"userId": "u-1"}).status_code == 400
    assert _post(server, "nonsense", track).status_code == 404

    big = {**track, "properties": {"blob": "x" * 33_000}}
    too_big = _post(server, "track", big)
    assert (too_big.status_code, too_big.json()["code"]) == (400, "too_large")
    huge = {"batch": [{**track, "type": "track", "properties": {"b": "x" * 30_000}}] * 18}
    assert _post(server, "batch", huge).json()["code"] == "too_large"

    not_json = requests.post(
        f"{server.url}/v1/track", data=b"{nope", auth=(WRITE_KEY, ""), timeout=10
    )
    assert (not_json.status_code, not_json.json()["code"]) == (400, "invalid_json")

    zipped = gzip.compress(json.dumps({"batch": [{**track, "type": "track"}]}).encode())
    answer = requests.post(
        f"{server.url}/v1/batch",
        data=zipped,
        headers={
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
        },
        timeout=10,
    )
    assert answer.status_code == 200
    assert len(server.wait_for_rows(2)) == 2  # the writeKey-in-body track and the gzip batch


def test_a_batch_keeps_its_bad_messages_apart_and_accepts_the_rest(server):
    batch = [
        {"type": "track", "userId": "u-1", "event": "A", "messageId": "m-1"},
        {"type": "track", "event": "no ids", "messageId": "m-2"},
        {"type": "identify", "anonymousId": "anon-9", "messageId": "m-3"},
    ]
    answer = _post(server, "batch", {"batch": batch})
    assert answer.status_code == 200
    assert answer.json()["rejected"] == [
        {"index": 1, "code": "invalid_request", "error": "userId or anonymousId is required"}
    ]
    assert {r["event_id"] for r in server.wait_for_rows(2)} == {"m-1", "m-3"}
    kept = [json.loads(line) for line in (server.landing / ".collector" / "rejected.jsonl").open()]
    assert [k["message"]["messageId"] for k in kept] == ["m-2"]


def test_message_ids_deduplicate_and_client_clocks_are_corrected(server):
    late_clock = datetime.now(UTC) + timedelta(hours=2)  # the device's clock runs 2 h ahead
    message = {
        "userId": "u-7",
        "event": "Clicked",
        "messageId": "same-id",
        "timestamp": (late_clock - timedelta(minutes=5)).isoformat(),
        "sentAt": late_clock.isoformat(),
    }
    assert _post(server, "track", message).status_code == 200
    assert _post(server, "track", message).status_code == 200  # an SDK retry
    time.sleep(1)
    rows = server.wait_for_rows(1)
    assert [r["event_id"] for r in rows] == ["same-id"]
    happened = datetime.fromisoformat(rows[0]["timestamp"])
    received = datetime.fromisoformat(rows[0]["received_at"])
    assert abs((received - happened) - timedelta(minutes=5)) < timedelta(seconds=1)
    assert rows[0]["original_timestamp"] == message["timestamp"]


def test_kill_9_under_load_loses_no_acknowledged_event_and_the_warehouse_holds_no_duplicate(
    tmp_path,
):
    server = Server(tmp_path, segment_seconds=0.5).start()
    acknowledged, unanswered = set(), []
    lock = threading.Lock()
    stop = threading.Event()

    def send():
        session = requests.Session()
        while not stop.is_set():
            ids = [f"k-{uuid.uuid4()}" for _ in range(50)]
            batch = [
                {"type": "track", "anonymousId": f"a-{i[-6:]}", "event": "Load", "messageId": i}
                for i in ids
            ]
            try:
                answer = session.post(
                    f"{server.url}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""), timeout=5
                )
                answered = answer.status_code == 200
            except requests.RequestException:
                answered = False
            with lock:
                if answered:
                    acknowledged.update(ids)
                else:
                    unanswered.append(batch)
                    return

    senders = [threading.Thread(target=send) for _ in range(4)]
    for thread in senders:
        thread.start()
    time.sleep(1.5)
    server.stop(signal.SIGKILL)
    stop.set()
    for thread in senders:
        thread.join(timeout=30)
    assert len(acknowledged) >= 1000, "the collector accepted too little load to test"

    # Restarted, it lands what the killed process had fsynced; the clients retry what got no
    # answer, as the SDKs do, so some of it may now be there twice.
    server.start()
    for batch in unanswered:
        assert _post(server, "batch", {"batch": batch}).status_code == 200
    server.stop()
    landed = [r["event_id"] for r in server.rows()]
    assert acknowledged <= set(landed)
    sent = acknowledged | {m["messageId"] for batch in unanswered for m in batch}
    assert set(landed) == sent

    warehouse = tmp_path / "wh.duckdb"
    con = connect_warehouse(path=warehouse)
    load_table(con, table("web__events"), server.landing)
    con.close()
    dbt_build("--select", "stg_web__events", env={"CDP_WAREHOUSE": str(warehouse)}, command="run")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        total, distinct = con.execute(
            "select count(*), count(distinct event_id) from staging.stg_web__events"
        ).fetchall()[0]
    assert total == distinct == len(sent)
