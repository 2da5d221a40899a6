"""Collector benchmark (not part of `make test`): `cdp serve collect` in its own process, fed
through /v1/batch by concurrent clients for a fixed time; events accepted per second, request
latency percentiles, and the time from an answer until its segment is in the landing folder.
Writes bench/results/collector.json.

    make bench-collector            # 4 clients, batches of 100 events, 20 s
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

from cdp.collector.app import web_events_landing
from cdp.serving.local import free_port, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = int(os.environ.get("CLIENTS", "4"))
BATCH = int(os.environ.get("BATCH", "100"))
SECONDS = float(os.environ.get("SECONDS", "20"))
KEY = "bench-key"
CDP = str(Path(sys.executable).parent / "cdp")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cdp-bench-collector-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [CDP, "serve", "collect", "--port", str(port), "--segment-seconds", "2"],
        env={**os.environ, "CDP_LANDING": str(work), "CDP_COLLECTOR_WRITE_KEYS": KEY},
    )
    try:
        wait_until_up(f"{url}/health", server)
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

        watcher = threading.Thread(target=watch)
        watcher.start()
        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        events = len(latencies) * BATCH

        time.sleep(5)  # the last segments close
        watching.set()
        watcher.join()
        # Send-to-landed: from each batch's answer to its segment appearing in the landing folder.
        landed_at: dict[str, float] = {}
        for path, moment in first_seen.items():
            for line in path.open():
                event_id = json.loads(line)["event_id"]
                if event_id in sent_at:
                    landed_at[event_id] = moment
        to_landing = [landed_at[i] - sent_at[i] for i in landed_at]
    finally:
        server.terminate()
        server.wait(timeout=30)
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
        "cores": os.cpu_count(),
    }
    out = ROOT / "bench" / "results" / "collector.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
