"""Collector benchmark (not part of `make test`): `cdp serve collect` in its own process, fed
through /v1/batch by concurrent clients for a fixed time; events accepted per second, request
latency percentiles, and the time from an answer until its segment is in the landing folder.
Under that load, a probe sends one event at a time and measures
- send to API: until `cdp serve api` (same profile store) shows the new visitor (hot path);
- send to warehouse: until the raw loader, run every LOAD_EVERY seconds (default 30, the
  landing sensor's interval), has committed it to raw.web__events.
Writes bench/results/collector.json.

    make bench-collector            # 4 clients, batches of 100 events, 20 s
    CDP_PROFILE_STORE=redis://127.0.0.1:6379/14 make bench-collector   # the hot path on Redis
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from bench.report import save
from cdp.core.local_servers import free_port, wait_until_up
from cdp.core.warehouse import connect_warehouse
from cdp.ingest.load import load_table
from cdp.ingest.sources import table as source_table
from cdp.realtime.collector.app import web_events_landing
from cdp.realtime.store import open_store

CLIENTS = int(os.environ.get("CLIENTS", "4"))
LOAD_EVERY = float(os.environ.get("LOAD_EVERY", "30"))
TOKEN = "bench-token"
BATCH = int(os.environ.get("BATCH", "100"))
SECONDS = float(os.environ.get("SECONDS", "20"))
KEY = "bench-key"
CDP = str(Path(sys.executable).parent / "cdp")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cdp-bench-collector-"))
    port, api_port = free_port(), free_port()
    url, api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}"
    store = os.environ.get("CDP_PROFILE_STORE") or str(work / "profiles.sqlite")
    if store.startswith("redis://"):
        open_store(store).client.flushdb()
    env = {**os.environ, "CDP_LANDING": str(work), "CDP_PROFILE_STORE": store}
    server = subprocess.Popen(
        [CDP, "serve", "collect", "--port", str(port), "--segment-seconds", "2"],
        env={**env, "CDP_COLLECTOR_WRITE_KEYS": KEY},
    )
    api_server = subprocess.Popen(
        [CDP, "serve", "api", "--port", str(api_port)],
        env={**env, "CDP_API_TOKENS": f"{TOKEN}=profiles:read"},
    )
    try:
        wait_until_up(f"{url}/health", server)
        wait_until_up(f"{api}/health", api_server)
        latencies: list[float] = []
        sent_at: dict[str, float] = {}
        lock = threading.Lock()
        deadline = time.monotonic() + SECONDS

        def client() -> None:
            session = requests.Session()
            while time.monotonic() < deadline:
                ids = [str(uuid.uuid4()) for _ in range(BATCH)]
                batch = [
                    {
                        "type": "track",
                        "anonymousId": f"anon-{i[:8]}",
                        "event": "Product Viewed",
                        "messageId": i,
                        "properties": {"sku": "A-1", "price": 19.9},
                        "context": {"page": {"path": "/p/a-1"}},
                    }
                    for i in ids
                ]
                started = time.perf_counter()
                answer = session.post(f"{url}/v1/batch", json={"batch": batch}, auth=(KEY, ""))
                elapsed = time.perf_counter() - started
                if answer.status_code != 200:
                    raise SystemExit(f"collector answered {answer.status_code}: {answer.text}")
                with lock:
                    latencies.append(elapsed)
                    sent_at[ids[-1]] = time.time()

        # When each segment appears in the landing folder, watched every 0.1 s.
        landing = web_events_landing(work)
        first_seen: dict[Path, float] = {}
        watching = threading.Event()

        def watch() -> None:
            while not watching.is_set():
                for path in landing.glob("*.jsonl"):
                    first_seen.setdefault(path, time.time())
                time.sleep(0.1)

        # The probe: one event at a time, then the API asked until it shows it.
        probes_sent: dict[str, float] = {}
        to_api: list[float] = []

        def probe() -> None:
            session = requests.Session()
            while time.monotonic() < deadline:
                anonymous_id = f"probe-{uuid.uuid4()}"
                message = {"anonymousId": anonymous_id, "event": "Probe", "messageId": anonymous_id}
                sent = time.time()
                session.post(f"{url}/v1/track", json=message, auth=(KEY, ""))
                probes_sent[anonymous_id] = sent
                while time.time() - sent < 30:
                    answer = session.get(
                        f"{api}/v1/profiles/anonymous_id:{anonymous_id}",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    )
                    if answer.status_code == 200:
                        to_api.append(time.time() - sent)
                        break
                    time.sleep(0.02)
                time.sleep(0.2)

        # The loader as the landing sensor runs it: every LOAD_EVERY seconds.
        probes_loaded: dict[str, float] = {}
        loading = threading.Event()

        def loader() -> None:
            con = connect_warehouse(path=work / "warehouse.duckdb")
            table = source_table("web__events")
            while not loading.wait(LOAD_EVERY):
                load_table(con, table, work)
                loaded = time.time()
                for (event_id,) in con.execute(
                    "select event_id from raw.web__events where event_id like 'probe-%'"
                ).fetchall():
                    probes_loaded.setdefault(event_id, loaded)
                everything = probes_sent and set(probes_sent) <= set(probes_loaded)
                if everything and time.monotonic() > deadline:
                    break
            con.close()

        watcher = threading.Thread(target=watch)
        watcher.start()
        loader_thread = threading.Thread(target=loader)
        loader_thread.start()
        started = time.perf_counter()
        threads = [threading.Thread(target=t) for t in [client] * CLIENTS + [probe]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        events = len(latencies) * BATCH

        time.sleep(5)  # the last segments close
        watching.set()
        watcher.join()
        loader_thread.join(timeout=3 * LOAD_EVERY + 30)
        loading.set()
        loader_thread.join()
        to_warehouse = [probes_loaded[i] - probes_sent[i] for i in probes_loaded]
        # Send-to-landed: from each batch's answer to its segment appearing in the landing folder.
        landed_at: dict[str, float] = {}
        for path, moment in first_seen.items():
            for line in path.open():
                event_id = json.loads(line)["event_id"]
                if event_id in sent_at:
                    landed_at[event_id] = moment
        to_landing = [landed_at[i] - sent_at[i] for i in landed_at]
    finally:
        for process in (server, api_server):
            process.terminate()
            process.wait(timeout=30)
    result = {
        "clients": CLIENTS,
        "batch_size": BATCH,
        "seconds": round(wall, 2),
        "events_accepted": events,
        "events_per_s": round(events / wall),
        "request_p50_ms": round(_percentile(latencies, 0.5) * 1000, 1),
        "request_p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "answer_to_landed_p50_s": round(_percentile(to_landing, 0.5), 2) if to_landing else None,
        "answer_to_landed_p99_s": round(_percentile(to_landing, 0.99), 2) if to_landing else None,
        "profile_store": "redis" if store.startswith("redis://") else "embedded",
        "probes": len(probes_sent),
        "send_to_api_p50_s": round(_percentile(to_api, 0.5), 3) if to_api else None,
        "send_to_api_p99_s": round(_percentile(to_api, 0.99), 3) if to_api else None,
        "probes_shown_by_api": len(to_api),
        "load_every_s": LOAD_EVERY,
        "send_to_warehouse_p50_s": round(_percentile(to_warehouse, 0.5), 1)
        if to_warehouse
        else None,
        "send_to_warehouse_p99_s": round(_percentile(to_warehouse, 0.99), 1)
        if to_warehouse
        else None,
        "probes_loaded": len(to_warehouse),
        "cores": os.cpu_count(),
    }
    save("collector", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
