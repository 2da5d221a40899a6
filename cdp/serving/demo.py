"""The live part of `make demo`: the collector and the profile API started for a moment on the
demo's landing folder and warehouse. Segment's Python SDK sends a few events for a demo customer
(they land in web/events for the next run), and the API is asked for that customer by email
until it shows them (the hot path).

    python -m cdp.serving.demo
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import requests

from cdp.core.config import landing_path, warehouse_path
from cdp.core.console import console
from cdp.core.local_servers import free_port, wait_until_up
from cdp.realtime.collector.app import web_events_landing

CDP = str(Path(sys.executable).parent / "cdp")


def _start(command: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [CDP, "serve", *command],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _a_customer() -> tuple[str, str]:
    with duckdb.connect(warehouse_path(), read_only=True) as con:
        return con.execute(
            """select c.profile_id, c.email from marts.customers c
            join marts.customer_traits t using (profile_id)
            where c.email is not null and t.purchase_count > 0
            order by t.revenue_eur desc, c.profile_id limit 1"""
        ).fetchone()


def send_events(collector_url: str, key: str, email: str, profile_id: str) -> None:
    """Identify and track through the collector with the official SDK."""
    from segment.analytics.client import Client

    errors = []
    client = Client(key, host=collector_url, on_error=lambda e, _: errors.append(e))
    user = f"demo-{profile_id[:8]}"
    client.identify(user, {"email": email}, anonymous_id=f"demo-browser-{profile_id[:8]}")
    client.page(user, "Shop", "Product", {"path": "/p/demo"})
    client.track(user, "Product Added", {"sku": "DEMO-1", "price": 49.9})
    client.flush()
    client.join()
    if errors:
        raise RuntimeError(f"the SDK reported: {errors[0]}")


def _get(url: str, token: str) -> dict:
    answer = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    answer.raise_for_status()
    return answer.json()


def live_round_trip(email: str, profile_id: str) -> tuple[dict, float, int]:
    """The collector and the API side by side: events sent with the SDK, then the API asked
    until it shows them. (the profile, seconds from send to visible, segments landed)."""
    key, token = secrets.token_hex(16), secrets.token_hex(16)
    collector_port, api_port = free_port(), free_port()
    landing = web_events_landing(Path(landing_path()))
    before = len(list(landing.glob("collector-*.jsonl")))
    collector = _start(
        ["collect", "--port", str(collector_port), "--segment-seconds", "0.5"],
        {"CDP_COLLECTOR_WRITE_KEYS": key},
    )
    api = _start(
        ["api", "--port", str(api_port)], {"CDP_API_TOKENS": f"{token}=profiles:read profiles:pii"}
    )
    profile_url = f"http://127.0.0.1:{api_port}/v1/profiles/email:{email}"
    try:
        wait_until_up(f"http://127.0.0.1:{collector_port}/health", collector)
        wait_until_up(f"http://127.0.0.1:{api_port}/health", api)
        sent = time.monotonic()
        send_events(f"http://127.0.0.1:{collector_port}", key, email, profile_id)
        profile = _get(profile_url, token)
        while profile["live"]["events_since_batch"] < 3 and time.monotonic() - sent < 10:
            time.sleep(0.05)
            profile = _get(profile_url, token)
        visible_after = time.monotonic() - sent
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(list(landing.glob("collector-*.jsonl"))) > before:
                break
            time.sleep(0.1)
    finally:
        for process in (collector, api):
            process.terminate()
            process.wait(timeout=30)
    return profile, visible_after, len(list(landing.glob("collector-*.jsonl"))) - before


def main() -> int:
    try:
        profile_id, email = _a_customer()
        profile, seconds, segments = live_round_trip(email, profile_id)
    except (RuntimeError, OSError, requests.RequestException, duckdb.Error) as exc:
        console.print(f"[red]live demo failed: {exc}[/red]")
        return 1
    traits, action = profile.get("traits", {}), profile.get("next_best_action", {})
    live = profile["live"]
    console.print(
        f"collector: 3 events for {email} sent with Segment's SDK; {segments} segment(s) "
        "landed in web/events (the next `cdp run` loads them)"
    )
    console.print(
        f"profile API: GET /v1/profiles/email:{email} -> {profile['profile_id']}, "
        f"{len(profile.get('identifiers', []))} identifiers, lifecycle "
        f"{traits.get('lifecycle_stage')}, revenue {traits.get('revenue_eur')} EUR, "
        f"audiences {profile.get('audiences') or 'none'}, next best action "
        f"{action.get('action')}"
    )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(live["event_counts"].items()))
    console.print(
        f"hot path: the API showed the {live['events_since_batch']} new events ({counts}) "
        f"{seconds:.2f} s after they were sent, before any batch run"
    )
    return 0 if live["events_since_batch"] >= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
