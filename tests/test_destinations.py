"""One contract-and-fault suite for every destination the registry discovers, each against the
stand-in in its own folder (a real local HTTP server, a folder, an embedded store): a new
destination folder is tested by this file without a line added to it. The last test proves that
a destination written outside the project (a folder on CDP_DESTINATIONS_PATH) plus one sync
definition is discovered, emulated and synced."""

from __future__ import annotations

import textwrap
from contextlib import contextmanager

import duckdb
import pytest

from cdp.core.emulator import Emulator
from cdp.core.http import AuthenticationFailed, DeliveryError
from reverse_etl.config import SyncConfig, load_syncs
from reverse_etl.destinations import (
    PATH_ENV,
    destination_names,
    emulator_class,
    get_destination,
)
from reverse_etl.engine import run_sync

FAST = {"backoff": 0.01, "max_retries": 6, "timeout": 2}
EMULATED = [name for name in destination_names() if emulator_class(name) is not None]
HTTP = [name for name in EMULATED if issubclass(emulator_class(name), Emulator)]
DELETING = [name for name in EMULATED if get_destination(name).supports_delete]


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "wh.duckdb"))
    connection.execute("create schema marts")
    connection.execute("""create table marts.customers as
        select 'p_' || lpad(cast(i as varchar), 5, '0') as profile_id,
            'kunde' || i || '@example.org' as email,
            'Vorname' || i as first_name, 'Nachname' || i as last_name
        from range(1, 121) t(i)""")
    yield connection
    connection.close()


def _sync(name: str, target, **changes) -> SyncConfig:
    """The destination's example sync, pointed at the running stand-in."""
    destination = get_destination(name)
    example = target.example_sync
    options = {**example.get("settings", {})}
    if "timeout" in destination.options_model.model_fields:
        options |= FAST | {"rate_limit_calls": 10_000}
    size = min(40, destination.max_batch_size or 40)
    definition = {
        "name": f"contract_{name}",
        "source": "marts.customers",
        "primary_key": "profile_id",
        "destination": name,
        "object": example["object"],
        "identifier": example["identifier"],
        "fields": example["fields"],
        "settings": options,
        "batch_size": size,
        "purpose": "none",
        "purpose_reason": "the shared contract suite: nobody is contacted",
    }
    return SyncConfig.model_validate(definition | changes)


def _expected(con, sync: SyncConfig) -> dict[str, dict]:
    """What the destination must hold: each model row's identifier and mapped fields."""
    columns = [sync.identifier.source, *sync.fields.values()]
    rows = con.execute(f"select {', '.join(columns)} from marts.customers").fetchall()
    return {str(row[0]).lower(): dict(zip(sync.fields, row[1:], strict=True)) for row in rows}


def _holds(target, expected: dict[str, dict]) -> None:
    held = target.held()
    assert set(held) == set(expected)
    for key, fields in expected.items():
        assert {field: held[key].get(field) for field in fields} == fields, key


@contextmanager
def _started(name: str, monkeypatch):
    """The destination's stand-in, running, and the environment pointing the destination at it."""
    destination, stand_in = get_destination(name), emulator_class(name)
    with stand_in(stand_in.default_credential) as target:
        monkeypatch.setenv(destination.url_env, target.url)
        if destination.credential_env():
            monkeypatch.setenv(destination.credential_env(), stand_in.default_credential)
        yield target


def check_contract(name: str, con, monkeypatch) -> None:
    """Everything is delivered once, an unchanged re-run sends nothing, a change only that."""
    with _started(name, monkeypatch) as target:
        sync = _sync(name, target)
        first = run_sync(con, sync)
        assert (first.status, first.added, first.failed) == ("succeeded", 120, 0)
        _holds(target, _expected(con, sync))
        again = run_sync(con, sync)
        assert (again.added, again.changed, again.unchanged, again.calls) == (0, 0, 120, 0)
        con.execute("update marts.customers set first_name = 'Anna' where profile_id <= 'p_00003'")
        changed = run_sync(con, sync)
        assert (changed.changed, changed.unchanged, changed.failed) == (3, 117, 0)
        _holds(target, _expected(con, sync))


@pytest.mark.parametrize("name", EMULATED)
def test_every_destination_delivers_once_and_then_only_changes(con, monkeypatch, name):
    check_contract(name, con, monkeypatch)


@pytest.mark.parametrize("name", DELETING)
def test_mirror_mode_removes_what_left_the_model(con, monkeypatch, name):
    with _started(name, monkeypatch) as target:
        sync = _sync(name, target, mode="mirror")
        run_sync(con, sync)
        con.execute("delete from marts.customers where profile_id > 'p_00110'")
        result = run_sync(con, sync)
        assert (result.removed, result.unchanged, result.failed) == (10, 110, 0)
        _holds(target, _expected(con, sync))


@pytest.mark.parametrize("name", HTTP)
def test_errors_throttling_and_dropped_connections_lose_and_repeat_nothing(con, monkeypatch, name):
    with _started(name, monkeypatch) as target:
        sync = _sync(name, target)
        target.fail_next(2, status=503)
        target.fail_next(1, status=429, retry_after="0")
        target.drop_next(1)
        target.drop_next(1, after_processing=True)  # applied, the answer lost: sent again
        result = run_sync(con, sync)
        assert (result.added, result.failed) == (120, 0)
        assert result.retries >= 5
        _holds(target, _expected(con, sync))
        assert run_sync(con, sync).calls == 0


@pytest.mark.parametrize("name", HTTP)
def test_an_outage_fails_the_run_and_the_next_run_delivers_the_rest(con, monkeypatch, name):
    with _started(name, monkeypatch) as target:
        sync = _sync(name, target)
        target.start_outage(after_requests=1, status=503)
        with pytest.raises(DeliveryError):
            run_sync(con, sync)
        failed = con.execute(
            "select status, added from reverse_etl.sync_runs order by started_at desc limit 1"
        ).fetchone()
        assert failed[0] == "failed" and failed[1] < 120
        target.end_outage()
        rest = run_sync(con, sync)
        assert rest.added == 120 - failed[1] and rest.failed == 0
        _holds(target, _expected(con, sync))


@pytest.mark.parametrize("name", HTTP)
def test_a_refused_credential_stops_the_run_at_the_first_call(con, monkeypatch, name):
    with _started(name, monkeypatch) as target:
        monkeypatch.setenv(get_destination(name).credential_env(), "whsec_wrong-credential")
        with pytest.raises(AuthenticationFailed) as refused:
            run_sync(con, _sync(name, target))
        assert "wrong-credential" not in str(refused.value)
        assert len(target.requests) == 1 and target.held() == {}


SHOUTBOX_DESTINATION = '''
    """A throw-away HTTP destination: POST /items with a bearer token, one result per item."""
    from reverse_etl.destinations import HttpDestination, Outcome


    class Shoutbox(HttpDestination):
        name = "shoutbox"
        batch_size = 25
        max_batch_size = 50
        rate_limit = (100, 1.0)
        token_env = "SHOUTBOX_TOKEN"
        url_env = "SHOUTBOX_URL"

        def upsert(self, records):
            body = {"items": [{"key": r.identifier, **r.fields} for r in records]}
            answer = self.transport.request_json("POST", "/items", json=body)
            stored = set(answer["stored"])
            return [Outcome(r.record_key, r.identifier in stored, r.identifier) for r in records]
'''

SHOUTBOX_EMULATOR = """
    import orjson

    from cdp.core.emulator import Emulator


    class ShoutboxEmulator(Emulator):
        example_sync = {
            "object": "shouts",
            "identifier": {"source": "profile_id", "destination": "key"},
            "fields": {"name": "first_name"},
        }

        def __init__(self, token="test-token"):
            super().__init__(token)
            self.items = {}

        def handle(self, method, path, headers, body):
            if not self.authorized(headers):
                return 401, {"error": "unauthorized"}, {}
            items = orjson.loads(body)["items"]
            for item in items:
                self.items[item.pop("key")] = item
            return 200, {"stored": list(self.items)}, {}

        def held(self):
            return {key.lower(): fields for key, fields in self.items.items()}
"""

SHOUTBOX_SYNC = """
    name: shouts
    source: marts.customers
    primary_key: profile_id
    destination: shoutbox
    object: shouts
    identifier: {source: profile_id, destination: key}
    fields: {name: first_name}
    purpose: none
    purpose_reason: a throw-away destination written for this test
"""


def test_a_destination_folder_outside_the_project_is_discovered_emulated_and_synced(
    con, monkeypatch, tmp_path
):
    folder = tmp_path / "plugins" / "shoutbox"
    folder.mkdir(parents=True)
    (folder / "destination.py").write_text(textwrap.dedent(SHOUTBOX_DESTINATION))
    (folder / "emulator.py").write_text(textwrap.dedent(SHOUTBOX_EMULATOR))
    syncs = tmp_path / "syncs"
    syncs.mkdir()
    (syncs / "shouts.yml").write_text(textwrap.dedent(SHOUTBOX_SYNC))
    monkeypatch.setenv(PATH_ENV, str(tmp_path / "plugins"))
    monkeypatch.setenv("CDP_SYNCS_DIR", str(syncs))

    assert "shoutbox" in destination_names() and "hubspot" in destination_names()
    assert get_destination("shoutbox").check_settings(60, {}) == [
        "batch_size: 60 is more than shoutbox accepts in one call (50)"
    ]
    with _started("shoutbox", monkeypatch) as target:
        result = run_sync(con, load_syncs()["shouts"])
        assert (result.added, result.calls) == (120, 5)
        assert target.held()["p_00007"] == {"name": "Vorname7"}
    # and the shared contract holds for it as for the shipped destinations
    check_contract("shoutbox", con, monkeypatch)
