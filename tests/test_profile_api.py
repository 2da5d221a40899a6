"""The profile store (the real Redis server and the embedded SQLite file), the `profile_api` sync
that fills it from the warehouse through the reverse-ETL engine, and the profile API served by
uvicorn over HTTP: lookups by any identifier, scopes and masking, errors, OpenAPI."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from cdp.core.local_servers import free_port, wait_until_up
from cdp.realtime.store import EmbeddedStore, RedisStore

CDP = str(Path(sys.executable).parent / "cdp")
REDIS_URL = os.environ.get("CDP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _redis_answers() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(params=["embedded", "redis"])
def store(request, tmp_path):
    if request.param == "embedded":
        opened = EmbeddedStore(tmp_path / "profiles.sqlite")
    else:
        if not _redis_answers():
            pytest.skip(f"no Redis server at {REDIS_URL}")
        opened = RedisStore(REDIS_URL)
        opened.client.flushdb()
    yield opened
    if request.param == "redis":
        opened.client.flushdb()
    opened.close()


def test_the_store_finds_a_profile_by_each_identifier_and_forgets_stale_ones(store):
    anna = {"profile_id": "p1", "identifiers": ["email:anna@example.com", "user_id:u1"]}
    bert = {"profile_id": "p2", "identifiers": ["email:bert@example.com"]}
    store.put([anna, bert])
    assert store.find("email:anna@example.com") == anna
    assert store.find("user_id:u1") == anna
    assert store.find("profile_id:p2") == bert
    assert store.find("email:nobody@example.com") is None
    # the API's read: profile, document and the profile's live overlay at once
    assert store.found("user_id:u1") == ("p1", anna, None)
    overlay = {"events": [], "traits": {"plan": "pro"}, "consents": {}}
    store.live_put({"profile_id:p1": overlay}, {})
    assert store.found("email:anna@example.com") == ("p1", anna, overlay)
    assert store.found("email:nobody@example.com") is None

    # Anna changed her email: the old one no longer finds her.
    store.put([{**anna, "identifiers": ["email:anna@new.example.com", "user_id:u1"]}])
    assert store.lookup("email:anna@example.com") is None
    assert store.lookup("email:anna@new.example.com") == "p1"

    # p2 was merged into p1: p1 now holds Bert's email, and deleting p2 keeps it there.
    store.put([{"profile_id": "p1", "identifiers": ["email:bert@example.com", "user_id:u1"]}])
    store.delete(["p2"])
    assert store.lookup("email:bert@example.com") == "p1"
    assert store.get("p2") is None
    store.delete(["p1"])
    assert (store.lookup("user_id:u1"), store.get("p1")) == (None, None)


READER, ANALYST, OUTSIDER = "reader-token", "analyst-token", "no-scope-token"
TOKENS = f"{READER}=profiles:read;{ANALYST}=profiles:read profiles:pii;{OUTSIDER}=other:scope"


@pytest.fixture(scope="module", params=["embedded", "redis"])
def served(request, full_run, tmp_path_factory):
    """The profile_api sync run by the reverse-ETL engine from a copy of the session's
    warehouse into a store, and `cdp serve api` over it (one per store for the module; the
    last test changes it)."""
    from cdp.core.warehouse import connect_warehouse
    from reverse_etl.config import load_syncs
    from reverse_etl.engine import run_sync

    folder = tmp_path_factory.mktemp(f"profile_api_{request.param}")
    location = str(folder / "profiles.sqlite")
    if request.param == "redis":
        if not _redis_answers():
            pytest.skip(f"no Redis server at {REDIS_URL}")
        location = REDIS_URL
        RedisStore(REDIS_URL).client.flushdb()
    saved = os.environ.get("CDP_PROFILE_STORE")
    os.environ["CDP_PROFILE_STORE"] = location
    copy = folder / "warehouse.duckdb"
    shutil.copy(os.environ["CDP_WAREHOUSE"], copy)
    con = connect_warehouse(path=copy)
    sync = load_syncs()["profile_api"]
    first = run_sync(con, sync)
    assert first.status == "succeeded" and first.added > 5000, first
    port = free_port()
    server = subprocess.Popen(
        [CDP, "serve", "api", "--port", str(port)],
        env={**os.environ, "CDP_API_TOKENS": TOKENS},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/health", server)
    yield url, con, sync
    server.terminate()
    server.wait(timeout=30)
    con.close()
    if saved is None:
        os.environ.pop("CDP_PROFILE_STORE", None)
    else:
        os.environ["CDP_PROFILE_STORE"] = saved
    if request.param == "redis":
        RedisStore(REDIS_URL).client.flushdb()


def _get(url: str, path: str, token: str | None = ANALYST, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{url}{path}", headers=headers, params=params, timeout=10)


def test_the_api_serves_a_profile_by_any_identifier_as_the_warehouse_holds_it(served):
    url, con, _ = served
    profile_id, email, revenue, stage = con.execute(
        """select c.profile_id, c.email, t.revenue_eur, t.lifecycle_stage
        from marts.customers c join marts.customer_traits t using (profile_id)
        join marts.audience_memberships m using (profile_id)
        where c.email is not null and t.revenue_eur > 0
        order by c.profile_id limit 1"""
    ).fetchone()
    other_kind, other_value = con.execute(
        """select identifier_kind, identifier_value from marts.customer_identifiers
        where profile_id = ? and identifier_kind not in ('email', 'profile_id')
            and not is_blocklisted and not is_shared
        order by 1, 2 limit 1""",
        [profile_id],
    ).fetchone()
    audiences = sorted(
        r[0]
        for r in con.execute(
            "select audience from marts.audience_memberships where profile_id = ?", [profile_id]
        ).fetchall()
    )

    by_email = _get(url, f"/v1/profiles/email:{email.upper()}").json()
    assert by_email["profile_id"] == profile_id
    assert by_email["pii"]["email"] == email
    assert by_email["traits"]["lifecycle_stage"] == stage
    assert by_email["traits"]["revenue_eur"] == pytest.approx(float(revenue))
    assert sorted(by_email["audiences"]) == audiences
    assert f"email:{email}" in by_email["identifiers"]
    assert {"next_best_action", "predictions", "consents"} <= set(by_email)
    assert _get(url, f"/v1/profiles/{other_kind}:{other_value}").json() == by_email
    assert _get(url, f"/v1/profiles/profile_id:{profile_id}").json() == by_email
    # Segment's anonymousId is the web events' cookie id
    cookie_owner, cookie = con.execute(
        """select profile_id, identifier_value from marts.customer_identifiers
        where identifier_kind = 'cookie_id' and not is_shared order by 1, 2 limit 1"""
    ).fetchone()
    assert _get(url, f"/v1/profiles/anonymous_id:{cookie}").json()["profile_id"] == cookie_owner

    traits = _get(url, f"/v1/profiles/email:{email}/traits", include="revenue_eur,lifecycle_stage")
    assert traits.json()["traits"] == {
        "revenue_eur": pytest.approx(float(revenue)),
        "lifecycle_stage": stage,
    }
    assert (
        _get(url, f"/v1/profiles/email:{email}/audiences").json()["audiences"]
        == (by_email["audiences"])
    )

    # Personal data only for a token allowed it.
    masked = _get(url, f"/v1/profiles/email:{email}", token=READER).json()
    assert masked["pii"]["email"] is None and masked["traits"] == by_email["traits"]
    assert f"email:{email}" not in masked["identifiers"] and "email:***" in masked["identifiers"]


def test_the_api_refuses_clearly_and_documents_itself(served):
    url, _, _ = served
    assert _get(url, "/v1/profiles/email:a@b.c", token=None).status_code == 401
    assert _get(url, "/v1/profiles/email:a@b.c", token="made-up").status_code == 401
    assert _get(url, "/v1/profiles/email:a@b.c", token=OUTSIDER).status_code == 403
    missing = _get(url, "/v1/profiles/email:nobody@nowhere.example")
    assert (missing.status_code, missing.json()["detail"]) == (
        404,
        "no profile holds email:nobody@nowhere.example",
    )
    assert _get(url, "/v1/profiles/no-kind").status_code == 400
    paths = requests.get(f"{url}/openapi.json", timeout=10).json()["paths"]
    assert {"/v1/profiles/{reference}", "/v1/profiles/{reference}/traits"} <= set(paths)


def test_a_profile_gone_from_the_warehouse_leaves_the_store(served):
    from reverse_etl.engine import run_sync

    url, con, sync = served
    profile_id, email = con.execute(
        "select profile_id, email from marts.customer_profile_documents"
        " where email is not null order by profile_id limit 1"
    ).fetchone()
    assert _get(url, f"/v1/profiles/email:{email}").status_code == 200
    # as a merge into another profile or an erasure takes it out of the marts
    con.execute("delete from marts.customer_profile_documents where profile_id = ?", [profile_id])
    second = run_sync(con, sync)
    assert (second.removed, second.added, second.changed) == (1, 0, 0)
    assert _get(url, f"/v1/profiles/email:{email}").status_code == 404
    assert _get(url, f"/v1/profiles/profile_id:{profile_id}").status_code == 404


def _collected(call: str, when: str, **fields) -> dict:
    """A Segment message as the collector accepts it (its row of the web events export)."""
    from datetime import UTC, datetime

    from cdp.realtime.collector.messages import accept

    message = {"timestamp": when, "messageId": f"m-{call}-{when}-{len(fields)}", **fields}
    return accept(message, datetime.now(UTC), call=call).row


def test_the_hot_path_ties_events_to_profiles_and_gives_way_to_the_batch(store):
    from cdp.realtime.live import (
        CONSENT_EVENT,
        LiveUpdater,
        adopt,
        overlay_for,
        view,
        with_live_consents,
    )

    anna = {
        "profile_id": "p1",
        "identifiers": ["shop_customer_id:u1", "email:anna@example.com"],
        "traits": {"last_web_visit_at": "2026-11-01 10:00:00"},
        "consents": ["email_marketing:email:granted"],
    }
    bert = {"profile_id": "p2", "identifiers": ["cookie_id:shared-tablet"]}
    store.put([anna, bert])
    live = LiveUpdater(store)

    # An unknown visitor: found by the browser id alone.
    live.apply([_collected("page", "2026-12-01T09:00:00Z", anonymousId="a1", name="Home")])
    document, overlay = overlay_for(store, "cookie_id:a1")
    assert document is None and view(overlay, None)["event_counts"] == {"page": 1}

    # She logs in: the browser joins her profile with what it did before.
    live.apply(
        [
            _collected(
                "identify",
                "2026-12-01T09:01:00Z",
                userId="u1",
                anonymousId="a1",
                traits={"plan": "gold"},
            ),
            _collected("track", "2026-12-01T09:02:00Z", userId="u1", event="Order Completed"),
            # the batch already holds this one (before her last web visit in the warehouse)
            _collected("page", "2026-10-01T09:00:00Z", userId="u1", name="Old"),
        ]
    )
    document, overlay = overlay_for(store, "cookie_id:a1")
    shown_live = view(overlay, document)
    assert document["profile_id"] == "p1"
    assert shown_live["event_counts"] == {"page": 1, "identify": 1, "track:Order Completed": 1}
    assert shown_live["traits"] == {"plan": "gold"}
    assert shown_live["last_seen_at"] == "2026-12-01T09:02:00.000Z"

    # A shared device the batch placed with Bert does not pull Anna's events over, nor merge.
    live.apply(
        [_collected("page", "2026-12-01T09:03:00Z", userId="u1", anonymousId="shared-tablet")]
    )
    assert overlay_for(store, "cookie_id:shared-tablet")[0]["profile_id"] == "p2"
    assert (
        view(*reversed(overlay_for(store, "email:anna@example.com")))["event_counts"]["page"] == 2
    )

    # Consent withdrawn through Segment's consent event: in force at once.
    live.apply(
        [
            _collected(
                "track",
                "2026-12-01T09:04:00Z",
                userId="u1",
                event=CONSENT_EVENT,
                context={"consent": {"categoryPreferences": {"Marketing": False}}},
            )
        ]
    )
    consents = view(*reversed(overlay_for(store, "shop_customer_id:u1")))["consents"]
    assert [(c["category"], c["granted"]) for c in consents] == [("Marketing", False)]
    assert with_live_consents(anna["consents"], consents) == ["email_marketing:email:withdrawn"]

    # The batch now knows an anonymous visitor: what it saw since moves into the profile.
    live.apply([_collected("page", "2026-12-01T09:05:00Z", anonymousId="a3", name="Pricing")])
    carla = {"profile_id": "p3", "identifiers": ["cookie_id:a3"]}
    store.put([carla])
    adopt(store, [carla])
    document, overlay = overlay_for(store, "cookie_id:a3")
    assert document == carla and view(overlay, document)["event_counts"] == {"page": 1}

    # Erasure: the profile, its overlay and the browser tied to it live are gone.
    store.delete(["p1"])
    assert overlay_for(store, "cookie_id:a1") == (None, None)
    assert overlay_for(store, "shop_customer_id:u1") == (None, None)


def _until(check, timeout: float = 10.0):
    """Polls `check` until it returns something true; (its value, seconds it took)."""
    import time

    started = time.monotonic()
    while True:
        value = check()
        if value or time.monotonic() - started > timeout:
            return value, time.monotonic() - started
        time.sleep(0.05)


def test_events_sent_with_the_sdk_show_in_the_api_within_seconds(served, tmp_path):
    """The hot path end to end: Segment's SDK -> `cdp serve collect` -> the store -> the API."""
    from segment.analytics.client import Client

    from cdp.realtime.live import CONSENT_EVENT
    from tests.test_collector import WRITE_KEY, Server

    url, con, _ = served
    profile_id, user_id = con.execute(
        """select profile_id, identifier_value from marts.customer_identifiers
        where identifier_kind = 'shop_customer_id' and not is_shared
            and profile_id in (select profile_id from marts.customer_consents
                where purpose = 'email_marketing' and channel = 'email' and is_granted)
        order by 1 limit 1"""
    ).fetchone()
    collector = Server(tmp_path, store=os.environ["CDP_PROFILE_STORE"]).start()
    try:
        errors = []
        client = Client(
            WRITE_KEY,
            host=collector.url,
            on_error=lambda error, batch: errors.append(error),
            upload_interval=0.05,
        )
        browser, stranger = f"browser-{tmp_path.name}", f"stranger-{tmp_path.name}"
        client.identify(user_id, {"plan": "gold"}, anonymous_id=browser)
        client.track(user_id, "Order Completed", {"revenue": 42.0}, anonymous_id=browser)
        client.page(anonymous_id=browser, name="Thanks")
        client.page(anonymous_id=stranger, name="Home")
        client.flush()

        def live_counts():
            answer = _get(url, f"/v1/profiles/anonymous_id:{browser}")
            return answer.status_code == 200 and answer.json()["live"]["event_counts"].get("page")

        seen, seconds = _until(live_counts)
        assert seen, "the events did not reach the API"
        assert seconds < 5
        profile = _get(url, f"/v1/profiles/anonymous_id:{browser}").json()
        assert profile["profile_id"] == profile_id
        assert profile["live"]["event_counts"] == {
            "identify": 1,
            "track:Order Completed": 1,
            "page": 1,
        }
        assert profile["live"]["traits"] == {"plan": "gold"}
        masked = _get(url, f"/v1/profiles/user_id:{user_id}", token=READER).json()
        assert masked["live"]["traits"] == {"plan": None}
        unknown = _get(url, f"/v1/profiles/anonymous_id:{stranger}").json()
        assert (unknown["known"], unknown["live"]["event_counts"]) == (False, {"page": 1})

        # Recent events, newest first, a page at a time.
        first = _get(url, f"/v1/profiles/user_id:{user_id}/events", limit=2).json()
        rest = _get(
            url, f"/v1/profiles/user_id:{user_id}/events", limit=2, before=first["next_before"]
        ).json()
        events = first["events"] + rest["events"]
        assert sorted(e["type"] for e in events) == ["identify", "page", "track"]
        assert len({e["message_id"] for e in events}) == 3 and rest["next_before"] is None
        moments = [(e["timestamp"], e["message_id"]) for e in events]
        assert moments == sorted(moments, reverse=True)

        # Consent withdrawn in the browser is in force in the API at once.
        client.track(
            user_id,
            CONSENT_EVENT,
            anonymous_id=browser,
            context={"consent": {"categoryPreferences": {"Marketing": False}}},
        )
        client.flush()
        withdrawn, _ = _until(
            lambda: (
                "email_marketing:email:withdrawn"
                in _get(url, f"/v1/profiles/user_id:{user_id}").json()["consents"]
            )
        )
        assert withdrawn
        client.join()
        assert errors == []
    finally:
        collector.stop()


def test_live_overlays_and_links_expire_as_redis_keys_do(store):
    """A browser's live overlay and the identifiers tied to it live for `live_seconds` after
    their last write, on Redis (key expiry) and in the embedded file alike."""
    store.live_seconds = 2
    store.put([{"profile_id": "p1", "identifiers": ["user_id:u1"]}])
    store.live_put(
        {"anonymous_id:b1": {"events": 1}, "profile_id:p1": {"events": 3}},
        {"email:anna@example.com": "anonymous_id:b1"},
    )
    assert store.live_get(["anonymous_id:b1"]) == {"anonymous_id:b1": {"events": 1}}
    assert store.live_lookup("email:anna@example.com") == "anonymous_id:b1"
    assert store.found("user_id:u1")[2] == {"events": 3}
    time.sleep(3)
    assert store.live_get(["anonymous_id:b1"]) == {"anonymous_id:b1": None}
    assert store.found("user_id:u1")[2] is None
    assert store.live_lookup("email:anna@example.com") is None
    assert store.live_scan() == ([], {})
    # a new write lives again, for the full time
    store.live_put({"anonymous_id:b2": {"events": 2}}, {})
    assert store.live_scan() == (["anonymous_id:b2"], {})


def test_an_embedded_store_written_before_overlays_expired_opens_and_keeps_them(tmp_path):
    import sqlite3

    path = tmp_path / "profiles.sqlite"
    with sqlite3.connect(path) as old:
        old.execute("create table live (subject text primary key, overlay blob)")
        old.execute("create table live_links (identifier text primary key, subject text)")
        old.execute("""insert into live values ('anonymous_id:b1', '{"events": 1}')""")
        old.execute("insert into live_links values ('email:a@example.com', 'anonymous_id:b1')")
    store = EmbeddedStore(path)
    try:
        assert store.live_get(["anonymous_id:b1"]) == {"anonymous_id:b1": {"events": 1}}
        assert store.live_lookup("email:a@example.com") == "anonymous_id:b1"
    finally:
        store.close()
