"""Profile API benchmark (not part of `make test`): `cdp serve api` over a store of PROFILES
synthetic documents (Redis at CDP_BENCH_REDIS_URL, else the embedded file), read by concurrent
clients in separate processes for SECONDS; requests per second and latency percentiles. Writes
bench/results/profile_api_<store>_<server processes>p.json.

    make bench-api                  # embedded store (WORKERS=2: two server processes)
    CDP_BENCH_REDIS_URL=redis://127.0.0.1:6379/14 make bench-api
"""

import asyncio
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import save
from cdp.core.local_servers import free_port, wait_until_up
from cdp.realtime.store import open_store

PROFILES = int(os.environ.get("PROFILES", "100000"))
PROCESSES = int(os.environ.get("PROCESSES", "2"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "8"))  # per client process
SECONDS = float(os.environ.get("SECONDS", "15"))
WORKERS = int(os.environ.get("WORKERS", "1"))  # server processes
# Requests per second offered in all (0: as fast as the server answers). A service level is a
# latency at a load: at saturation every request also waits behind the others in the queue.
RATE = float(os.environ.get("RATE", "0"))
TOKEN = "bench-token"
CDP = str(Path(sys.executable).parent / "cdp")


def _documents(count: int):
    for n in range(count):
        yield {
            "profile_id": f"p_{n:08d}",
            "identifiers": [f"email:person{n}@example.com", f"cookie_id:c{n:08d}"],
            "audiences": ["engaged_non_buyers"] if n % 7 == 0 else [],
            "consents": ["email_marketing:email:granted"],
            "profile": {"city": "Berlin", "country_code": "DE", "record_count": 3},
            "pii": {"email": f"person{n}@example.com", "first_name": "Anna"},
            "traits": {"revenue_eur": n % 500 * 1.5, "lifecycle_stage": "customer"},
        }


async def _connection(
    host: str, port: int, deadline: float, latencies: list[float], interval: float
) -> None:
    """One keep-alive HTTP/1.1 connection asking for random profiles until the deadline: a raw
    asyncio client, since a requests.Session spends more CPU per call than the server does and
    the two share the machine's cores. With an `interval`, requests are due on a schedule and
    each latency counts from when it was due, so a slow answer that delays the next request is
    counted in full (no coordinated omission)."""
    reader, writer = await asyncio.open_connection(host, port)
    rng = random.Random()
    due = time.perf_counter() + rng.uniform(0, interval)
    try:
        while time.monotonic() < deadline:
            n = rng.randrange(PROFILES)
            request = (
                f"GET /v1/profiles/email:person{n}@example.com HTTP/1.1\r\n"
                f"Host: {host}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            )
            if interval:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                started, due = due, due + interval
            else:
                started = time.perf_counter()
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"{head.decode()}{body.decode()}")
    finally:
        writer.close()


def _client(url: str, seconds: float, results) -> None:
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    interval = PROCESSES * CONNECTIONS / RATE if RATE else 0.0

    async def run() -> None:
        await asyncio.gather(
            *(
                _connection(host, int(port), deadline, latencies, interval)
                for _ in range(CONNECTIONS)
            )
        )

    asyncio.run(run())
    results.put(latencies)


def main() -> None:
    redis_url = os.environ.get("CDP_BENCH_REDIS_URL", "")
    work = Path(tempfile.mkdtemp(prefix="cdp-bench-api-"))
    location = redis_url or str(work / "profiles.sqlite")
    store = open_store(location)
    if redis_url:
        store.client.flushdb()
    batch = []
    for document in _documents(PROFILES):
        batch.append(document)
        if len(batch) == 5_000:
            store.put(batch)
            batch = []
    store.put(batch)
    store.close()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [CDP, "serve", "api", "--port", str(port), "--workers", str(WORKERS)],
        env={
            **os.environ,
            "CDP_PROFILE_STORE": location,
            "CDP_API_TOKENS": f"{TOKEN}=profiles:read profiles:pii",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_up(f"{url}/health", server)
        results = multiprocessing.Queue()
        started = time.perf_counter()
        clients = [
            multiprocessing.Process(target=_client, args=(url, SECONDS, results))
            for _ in range(PROCESSES)
        ]
        for client in clients:
            client.start()
        latencies = [value for _ in clients for value in results.get()]
        for client in clients:
            client.join()
        wall = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    latencies.sort()
    kind = "redis" if redis_url else "embedded"
    result = {
        "store": kind,
        "profiles": PROFILES,
        "clients": PROCESSES * CONNECTIONS,
        "client": "asyncio, keep-alive HTTP/1.1",
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / wall),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "cores": os.cpu_count(),
        "server_workers": WORKERS,
        "offered_per_s": RATE or None,
        "note": "clients and server share the machine's cores",
    }
    save(f"profile_api_{kind}_{WORKERS}p" + (f"_{RATE:.0f}rps" if RATE else ""), result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
