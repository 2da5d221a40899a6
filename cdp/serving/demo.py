"""The live part of `make demo`: the collector and the profile API started for a moment on the
demo's landing folder and warehouse. Segment's Python SDK sends a few events for a demo customer
(they land in web/events for the next run), then the API is asked for that customer by email.

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

from cdp.collector.app import web_events_landing
from cdp.config import landing_path, warehouse_path
from cdp.console import console
from cdp.serving.local import free_port, wait_until_up

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


def send_events(email: str, profile_id: str) -> int:
    """Identify and track through the collector with the official SDK; events landed."""
    from segment.analytics.client import Client

    key, port = secrets.token_hex(16), free_port()
    collector = _start(
        ["collect", "--port", str(port), "--segment-seconds", "0.5"],
        {"CDP_COLLECTOR_WRITE_KEYS": key},
    )
    landing = web_events_landing(Path(landing_path()))
    before = len(list(landing.glob("collector-*.jsonl")))
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", collector)
        errors = []
        client = Client(
            key, host=f"http://127.0.0.1:{port}", on_error=lambda e, _: errors.append(e)
        )
        user = f"demo-{profile_id[:8]}"
        client.identify(user, {"email": email}, anonymous_id=f"demo-browser-{profile_id[:8]}")
        client.page(user, "Shop", "Product", {"path": "/p/demo"})
        client.track(user, "Product Added", {"sku": "DEMO-1", "price": 49.9})
        client.flush()
        client.join()
        if errors:
            raise RuntimeError(f"the SDK reported: {errors[0]}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(list(landing.glob("collector-*.jsonl"))) > before:
                break
            time.sleep(0.1)
    finally:
        collector.terminate()
        collector.wait(timeout=30)
    return len(list(landing.glob("collector-*.jsonl"))) - before


def look_up(email: str) -> dict:
    token, port = secrets.token_hex(16), free_port()
    api = _start(
        ["api", "--port", str(port)], {"CDP_API_TOKENS": f"{token}=profiles:read profiles:pii"}
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", api)
        answer = requests.get(
            f"http://127.0.0.1:{port}/v1/profiles/email:{email}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()
    finally:
        api.terminate()
        api.wait(timeout=30)


def main() -> int:
    try:
        profile_id, email = _a_customer()
        segments = send_events(email, profile_id)
        console.print(
            f"collector: 3 events for {email} sent with Segment's SDK, {segments} segment(s) "
            "landed in web/events (the next `cdp run` loads them)"
        )
        profile = look_up(email)
    except (RuntimeError, OSError, requests.RequestException, duckdb.Error) as exc:
        console.print(f"[red]live demo failed: {exc}[/red]")
        return 1
    traits, action = profile.get("traits", {}), profile.get("next_best_action", {})
    console.print(
        f"profile API: GET /v1/profiles/email:{email} -> {profile['profile_id']}, "
        f"{len(profile.get('identifiers', []))} identifiers, lifecycle "
        f"{traits.get('lifecycle_stage')}, revenue {traits.get('revenue_eur')} EUR, "
        f"audiences {profile.get('audiences') or 'none'}, next best action "
        f"{action.get('action')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
