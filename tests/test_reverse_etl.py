"""Reverse ETL against local emulators of the destination APIs (real HTTP servers), on a real
DuckDB warehouse: contracts, only-changes delivery, faults without lost or duplicated updates."""

import json
from contextlib import ExitStack
from pathlib import Path

import duckdb
import pytest

from cdp.core.http import DeliveryError, RateLimiter
from cdp.core.warehouse import as_warehouse
from reverse_etl.config import SyncConfig, SyncConfigError, load_sync, load_syncs
from reverse_etl.destinations import destination_names, emulator_class, get_destination
from reverse_etl.destinations.braze.emulator import BrazeEmulator
from reverse_etl.destinations.hubspot.emulator import HubSpotEmulator
from reverse_etl.destinations.salesforce.emulator import SalesforceEmulator
from reverse_etl.destinations.webhook.emulator import WebhookEmulator
from reverse_etl.engine import delivery_log, ensure_state, run_sync

FAST = {"backoff": 0.01, "max_retries": 4, "timeout": 2}


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    """Every destination's credential variable holds what its emulator accepts by default."""
    for name in destination_names():
        emulator = emulator_class(name)
        variable = get_destination(name).credential_env()
        if variable and emulator is not None:
            monkeypatch.setenv(variable, emulator.default_credential)


@pytest.fixture
def con(tmp_path):
    """A warehouse with a golden-record table of 250 customers."""
    connection = duckdb.connect(str(tmp_path / "wh.duckdb"))
    connection.execute("create schema marts")
    connection.execute("""create table marts.customers as
        select 'p_' || lpad(cast(i as varchar), 5, '0') as profile_id,
            'kunde' || i || '@example.org' as email,
            'Vorname' || i as first_name, 'Nachname' || i as last_name,
            'DE' as country_code, i % 3 = 0 as is_on_email_list
        from range(1, 251) t(i)""")
    yield connection
    connection.close()


def sync_for(destination: str, url: str, **changes) -> SyncConfig:
    base = {
        "name": f"test_{destination}",
        "source": "marts.customers",
        "primary_key": "profile_id",
        "destination": destination,
        "object": "contacts",
        "identifier": {"source": "email", "destination": "email"},
        "fields": {"firstname": "first_name", "lastname": "last_name", "country": "country_code"},
        "settings": {"base_url": url, **FAST},
        "purpose": "none",
        "purpose_reason": "a test destination: nobody is contacted",
    }
    base.update(changes)
    return SyncConfig.model_validate(base)


def test_every_shipped_sync_definition_is_valid():
    syncs = load_syncs()
    assert {
        "hubspot_contacts",
        "salesforce_contacts",
        "braze_users",
        "webhook_customers",
        "customers_file",
    } <= set(syncs)


def test_invalid_definitions_name_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: Bad-Name\nsource: customers\nprimary_key: id\ndestination: hubspot\n"
        "identifier: {source: email, destination: email}\nfields: {}\n"
    )
    with pytest.raises(SyncConfigError) as error:
        load_sync(bad)
    message = str(error.value)
    assert str(bad) in message
    assert "name:" in message and "source:" in message and "fields:" in message
    unknown = tmp_path / "unknown.yml"
    valid = (
        "name: x\nsource: marts.customers\nprimary_key: id\n"
        "identifier: {source: email, destination: email}\nfields: {a: b}\n"
    )
    unknown.write_text(valid + "destination: fax\npurpose: none\npurpose_reason: " + "x" * 25)
    with pytest.raises(SyncConfigError, match="destination: unknown 'fax'"):
        load_sync(unknown)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("", "purpose: Field required"),
        ("purpose: none\n", "purpose: none needs purpose_reason"),
        ("purpose: none\npurpose_reason: because\n", "at least 20 characters"),
        ("purpose: email_marketing\n", "channel: required with purpose email_marketing"),
        ("purpose: email_marketing\nchannel: fax\n", "channel: Input should be"),
        ("purpose: sales_contact\nchannel: email\nbatch_size: 500\n", "batch_size: 500 is more"),
        (
            "purpose: sales_contact\nchannel: email\nsettings: {rate_limt_calls: 5}\n",
            "settings.rate_limt_calls: unknown setting for hubspot",
        ),
        (
            "purpose: sales_contact\nchannel: email\nsettings: {timeout: -1}\n",
            "settings.timeout: input should be greater than 0",
        ),
        (
            "purpose: sales_contact\nchannel: email\ntrigger: {columns: [city]}\n",
            "trigger.columns: city not sent by this sync",
        ),
        ("purpose: sales_contact\nchannel: email\ntrigger: {}\n", "name columns, or set"),
    ],
)
def test_consent_and_destination_limits_are_checked_when_a_sync_is_loaded(tmp_path, extra, problem):
    path = tmp_path / "hubspot.yml"
    path.write_text(
        "name: x\nsource: marts.customers\nprimary_key: profile_id\ndestination: hubspot\n"
        "identifier: {source: email, destination: email}\nfields: {firstname: first_name}\n" + extra
    )
    with pytest.raises(SyncConfigError) as error:
        load_sync(path)
    assert str(path) in str(error.value)
    assert problem in str(error.value)


def test_an_invalid_definition_is_reported_and_the_others_still_load(tmp_path):
    from reverse_etl.config import SYNCS_DIR, load_syncs_reporting

    for shipped in ("hubspot_contacts.yml", "braze_users.yml"):
        (tmp_path / shipped).write_text((SYNCS_DIR / shipped).read_text())
    (tmp_path / "broken.yml").write_text("name: broken\nsource: [not, a, relation\n")
    syncs, problems = load_syncs_reporting(tmp_path)
    assert set(syncs) == {"hubspot_contacts", "braze_users"}
    assert len(problems) == 1 and "broken.yml" in problems[0]


def test_hubspot_contract_batches_and_only_changes(con):
    with HubSpotEmulator() as hubspot:
        sync = sync_for("hubspot", hubspot.url)
        first = run_sync(con, sync)
        assert (first.status, first.added, first.failed) == ("succeeded", 250, 0)
        sizes = [len(json.loads(r["body"])["inputs"]) for r in hubspot.requests]
        assert sizes == [100, 100, 50]
        assert len(hubspot.live_contacts()) == 250
        assert hubspot.live_contacts()["kunde7@example.org"]["properties"]["firstname"] == (
            "Vorname7"
        )
        again = run_sync(con, sync)
        assert (again.added, again.changed, again.unchanged, again.calls) == (0, 0, 250, 0)
        assert len(hubspot.requests) == 3  # nothing changed: no call at all
        con.execute("update marts.customers set first_name = 'Anna' where profile_id = 'p_00007'")
        changed = run_sync(con, sync)
        assert (changed.changed, changed.calls) == (1, 1)
        assert hubspot.live_contacts()["kunde7@example.org"]["properties"]["firstname"] == "Anna"
        runs = con.execute(
            "select status, added, changed from reverse_etl.sync_runs order by started_at"
        ).fetchall()
        assert runs == [("succeeded", 250, 0), ("succeeded", 0, 0), ("succeeded", 0, 1)]


def test_concurrent_batches_deliver_everything_once_and_survive_an_outage(con):
    with HubSpotEmulator() as hubspot:
        sync = sync_for("hubspot", hubspot.url, batch_size=25, concurrency=4)
        hubspot.delay_next(0.3, count=4)  # the first four answers are slow: the rest overlap
        first = run_sync(con, sync)
        assert (first.status, first.added, first.failed, first.calls) == ("succeeded", 250, 0, 10)
        assert hubspot.max_in_flight == 4
        assert len(hubspot.live_contacts()) == 250
        state = "select count(*) from reverse_etl.sync_state where sync_name = 'test_hubspot'"
        assert con.execute(state).fetchall() == [(250,)]

        con.execute("update marts.customers set first_name = first_name || '!'")
        hubspot.start_outage(after_requests=3, status=503)
        with pytest.raises(DeliveryError):
            run_sync(con, sync)
        hubspot.end_outage()
        changed = "select count(*) from reverse_etl.sync_state s join marts.customers c on " \
            "c.profile_id = s.record_key where s.sync_name = 'test_hubspot' and " \
            "s.row_hash = md5(c.email || chr(31) || c.first_name || chr(31) || c.last_name " \
            "|| chr(31) || c.country_code)"  # fmt: skip
        confirmed_before = con.execute(changed).fetchall()[0][0]
        applied = [
            c for c in hubspot.live_contacts().values() if c["properties"]["firstname"][-1] == "!"
        ]
        # the three batches the destination applied are confirmed, whichever batch failed first
        assert confirmed_before == len(applied) == 75
        again = run_sync(con, sync)
        assert again.status == "succeeded" and again.changed == 250 - confirmed_before
        assert con.execute(changed).fetchall() == [(250,)]
        names = {c["properties"]["firstname"] for c in hubspot.live_contacts().values()}
        assert all(name.endswith("!") for name in names)


def test_rejected_records_are_stored_with_the_message_and_retried_next_run(con):
    con.execute("update marts.customers set email = 'not-an-email' where profile_id = 'p_00003'")
    with HubSpotEmulator() as hubspot:
        sync = sync_for("hubspot", hubspot.url)
        result = run_sync(con, sync)
        assert (result.status, result.failed) == ("partial", 1)
        [(key, kind, message, attempts)] = con.execute(
            "select record_key, error_kind, message, attempts from reverse_etl.sync_errors"
        ).fetchall()
        assert (key, kind, attempts) == ("p_00003", "rejected", 1)
        assert "not a valid email address" in message
        assert run_sync(con, sync).failed == 1  # retried, still rejected
        assert con.execute("select attempts from reverse_etl.sync_errors").fetchall() == [(2,)]
        con.execute(
            "update marts.customers set email = 'fixed@example.org' where profile_id = 'p_00003'"
        )
        fixed = run_sync(con, sync)
        assert (fixed.added, fixed.failed) == (1, 0)
        assert con.execute("select count(*) from reverse_etl.sync_errors").fetchall() == [(0,)]


def test_invalid_rows_are_caught_before_sending(con):
    con.execute(
        "insert into marts.customers select * from marts.customers where profile_id = 'p_00010'"
    )
    con.execute("update marts.customers set email = null where profile_id = 'p_00011'")
    with HubSpotEmulator() as hubspot:
        result = run_sync(con, sync_for("hubspot", hubspot.url))
        assert result.invalid == 3  # two rows sharing a key, one without identifier
        assert result.added == 248
        kinds = con.execute(
            "select record_key, error_kind, message from reverse_etl.sync_errors order by 1"
        ).fetchall()
        assert [k[:2] for k in kinds] == [("p_00010", "invalid"), ("p_00011", "invalid")]
        sent = {r["properties"]["email"] for r in hubspot.live_contacts().values()}
        assert "kunde10@example.org" not in sent


def test_server_errors_throttling_and_dropped_connections_lose_nothing(con):
    with HubSpotEmulator(rate_limit=(2, 0.5)) as hubspot:
        hubspot.fail_next(2, status=503)
        hubspot.fail_next(1, status=429, retry_after="0.05")
        hubspot.drop_next(1, after_processing=True)  # applied, answer lost: sent again
        sync = sync_for(
            "hubspot",
            hubspot.url,
            settings={"base_url": hubspot.url, **FAST, "max_retries": 8, "rate_limit_calls": 50},
        )
        result = run_sync(con, sync)
        assert (result.status, result.added, result.failed) == ("succeeded", 250, 0)
        assert result.retries >= 4
        assert len(hubspot.live_contacts()) == 250
        # a re-sent batch is an idempotent upsert: each contact holds exactly its values
        assert all(
            c["properties"]["lastname"] == "Nachname" + c["properties"]["email"][5:-12]
            for c in hubspot.live_contacts().values()
        )
        assert max(hubspot.upserts_per_email.values()) <= 2
        assert run_sync(con, sync).calls == 0


def test_a_run_that_dies_half_way_resumes_without_resending(con):
    with HubSpotEmulator() as hubspot:
        sync = sync_for("hubspot", hubspot.url)
        hubspot.start_outage(after_requests=1)  # the first batch goes through, then down
        with pytest.raises(DeliveryError):
            run_sync(con, sync)
        assert con.execute("select count(*) from reverse_etl.sync_state").fetchall() == [(100,)]
        status = con.execute("select status from reverse_etl.sync_runs").fetchall()
        assert status == [("failed",)]
        hubspot.end_outage()
        resumed = run_sync(con, sync)
        assert (resumed.added, resumed.unchanged, resumed.failed) == (150, 100, 0)
        assert set(hubspot.upserts_per_email.values()) == {1}
        assert len(hubspot.live_contacts()) == 250


def test_dry_run_counts_and_samples_without_calling(con):
    with HubSpotEmulator() as hubspot:
        result = run_sync(con, sync_for("hubspot", hubspot.url), dry_run=True)
        assert (result.status, result.added, result.calls) == ("dry_run", 250, 0)
        assert len(result.samples["added"]) == 5
        assert result.samples["added"][0]["firstname"].startswith("Vorname")
        assert hubspot.requests == []
        assert con.execute("select count(*) from reverse_etl.sync_state").fetchall() == [(0,)]


def test_full_resync_sends_everything_again(con):
    with HubSpotEmulator() as hubspot:
        sync = sync_for("hubspot", hubspot.url)
        run_sync(con, sync)
        again = run_sync(con, sync, full_resync=True)
        assert (again.added, again.calls) == (250, 3)


def test_a_refused_token_fails_the_run_at_once_recorded_and_never_logged(con, monkeypatch):
    from cdp.core.http import AuthenticationFailed

    monkeypatch.setenv("HUBSPOT_TOKEN", "secret-wrong-token")
    with HubSpotEmulator() as hubspot:
        with pytest.raises(AuthenticationFailed, match="hubspot refused the credentials") as error:
            run_sync(con, sync_for("hubspot", hubspot.url))
        assert "INVALID_AUTHENTICATION" in str(error.value)
        assert len(hubspot.requests) == 1  # not one call per batch: the first 401 stops the run
    run = con.execute(
        "select status, calls, planned, added, failed, message from reverse_etl.sync_runs"
    ).fetchone()
    assert run[:5] == ("failed", 1, 250, 0, 0)
    assert "secret-wrong-token" not in run[5] and "HTTP 401" in run[5]
    # 250 people were not rejected: nobody is blamed for a bad token.
    assert con.execute("select count(*) from reverse_etl.sync_errors").fetchone() == (0,)


def test_salesforce_collections_upsert_with_per_record_results(con):
    con.execute("update marts.customers set email = 'broken' where profile_id = 'p_00005'")
    with SalesforceEmulator() as salesforce:
        sync = sync_for(
            "salesforce",
            salesforce.url,
            object="Contact",
            identifier={"source": "profile_id", "destination": "CDP_Profile_Id__c"},
            fields={"FirstName": "first_name", "LastName": "last_name", "Email": "email"},
        )
        result = run_sync(con, sync)
        assert (result.planned, result.added, result.failed) == (250, 249, 1)
        sizes = [len(json.loads(r["body"])["records"]) for r in salesforce.requests]
        assert sizes == [200, 50]
        assert len(salesforce.records) == 249
        [(message,)] = con.execute("select message from reverse_etl.sync_errors").fetchall()
        assert message == "INVALID_EMAIL_ADDRESS: Email: invalid email address: broken"


def test_braze_mirror_deletes_what_left_the_model(con):
    with BrazeEmulator() as braze:
        sync = sync_for(
            "braze",
            braze.url,
            object="users",
            mode="mirror",
            identifier={"source": "profile_id", "destination": "external_id"},
            fields={"email": "email", "first_name": "first_name"},
            filter="is_on_email_list",
        )
        first = run_sync(con, sync)
        assert first.added == 83
        assert max(len(json.loads(r["body"])["attributes"]) for r in braze.requests) <= 75
        con.execute(
            "update marts.customers set is_on_email_list = false "
            "where profile_id in ('p_00003', 'p_00006')"
        )
        second = run_sync(con, sync)
        assert (second.removed, second.failed) == (2, 0)
        assert "p_00003" not in braze.users and len(braze.users) == 81
        assert run_sync(con, sync).calls == 0


def test_webhook_batches_are_signed_and_replays_are_not_applied_twice(con, monkeypatch):
    with WebhookEmulator() as receiver:
        sync = sync_for(
            "webhook",
            receiver.url,
            object="customer",
            identifier={"source": "profile_id", "destination": "profile_id"},
        )
        receiver.drop_next(1, after_processing=True)
        result = run_sync(con, sync)
        assert (result.added, result.failed) == (250, 0)
        assert len(receiver.records) == 250
        # the dropped answer made the client send the batch again; the key prevented a second
        # application
        assert set(receiver.applied_per_key.values()) == {1}
        assert len(receiver.requests) == 2
    monkeypatch.setenv("WEBHOOK_SECRET", "whsec_other")
    with WebhookEmulator() as strict:
        from cdp.core.http import AuthenticationFailed

        with pytest.raises(AuthenticationFailed, match="webhook refused"):  # bad signature: 401
            run_sync(con, sync_for("webhook", strict.url, name="other_hook"))
        assert strict.records == {}


def test_file_export_writes_parquet(con, tmp_path):
    sync = sync_for(
        "file",
        "",
        object="customers",
        settings={"directory": str(tmp_path / "exports"), "format": "parquet"},
        identifier={"source": "profile_id", "destination": "profile_id"},
    )
    result = run_sync(con, sync)
    assert result.added == 250
    [path] = list(Path(tmp_path / "exports").glob("customers_*.parquet"))
    rows = (
        duckdb.connect()
        .execute(f"select count(*), count(distinct profile_id) from '{path}'")
        .fetchall()
    )
    assert rows == [(250, 250)]
    assert run_sync(con, sync).added == 0


def test_every_sync_is_a_dbt_exposure_of_its_model():
    import yaml

    from cdp.core.config import PROJECT_ROOT

    exposures = {
        e["name"]: e
        for e in yaml.safe_load(
            (PROJECT_ROOT / "models" / "marts" / "_syncs__exposures.yml").read_text()
        )["exposures"]
    }
    for sync in load_syncs().values():
        assert sync.name in exposures, sync.name
        assert exposures[sync.name]["type"] == "application"
        expected = [f"ref('{sync.source.split('.')[-1]}')"]
        if sync.gated:
            expected.append("ref('customer_consents')")
        if sync.audience:
            expected.append("ref('audience_memberships')")
        assert exposures[sync.name]["depends_on"] == expected


def test_client_keeps_to_the_quota_so_the_destination_never_throttles(con):
    # The client keeps well under the destination's window of 2 calls per 0.3 s.
    with HubSpotEmulator(rate_limit=(2, 0.3)) as hubspot:
        settings = {
            "base_url": hubspot.url,
            **FAST,
            "rate_limit_calls": 2,
            "rate_limit_period": 0.6,
        }
        result = run_sync(con, sync_for("hubspot", hubspot.url, settings=settings))
        assert (result.added, result.retries, result.calls) == (250, 0, 3)
        assert len(hubspot.requests) == 3  # no 429 answered, nothing retried


def test_the_rate_limiter_lets_a_call_through_once_the_oldest_leaves_the_window():
    now = [0.0]
    waits = []

    def sleep(seconds):
        waits.append(round(seconds, 3))
        now[0] += seconds

    limiter = RateLimiter(3, 10.0, clock=lambda: now[0], sleep=sleep)
    for at in (0.0, 1.0, 2.0):
        now[0] = at
        limiter.acquire()
    limiter.acquire()  # at 2 s: waits until the call at 0 s is 10 s old
    assert waits == [8.001]
    now[0] = 10.5  # the calls at 1, 2 and 10 s are still in the window
    limiter.acquire()
    assert waits == [8.001, 0.501]
    now[0] = 13.0  # 1 and 2 s have left: no wait
    limiter.acquire()
    assert waits == [8.001, 0.501]
    # A lifted quota: thousands in the window, none waiting.
    lifted = RateLimiter(1_000_000, 10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5_000):
        lifted.acquire()
    assert len(waits) == 2 and len(lifted.sent) == 5_000


def test_a_hanging_destination_times_out_and_is_retried(con):
    with HubSpotEmulator() as hubspot:
        hubspot.delay_next(1.5)
        sync = sync_for(
            "hubspot", hubspot.url, settings={"base_url": hubspot.url, **FAST, "timeout": 0.5}
        )
        result = run_sync(con, sync)
        assert (result.added, result.failed) == (250, 0)
        assert result.retries >= 1
        assert len(hubspot.live_contacts()) == 250


def test_consent_gates_the_sync_and_a_withdrawal_removes_the_person(con):
    con.execute("""create table marts.customer_consents as
        select profile_id, 'email_marketing' as purpose, 'email' as channel,
            profile_id <= 'p_00100' as is_granted
        from marts.customers""")
    with BrazeEmulator() as braze:
        sync = sync_for(
            "braze",
            braze.url,
            object="users",
            mode="mirror",
            purpose="email_marketing",
            channel="email",
            identifier={"source": "profile_id", "destination": "external_id"},
            fields={"email": "email"},
        )
        assert run_sync(con, sync).added == 100
        assert set(braze.users) == {f"p_{i:05d}" for i in range(1, 101)}
        con.execute(
            "update marts.customer_consents set is_granted = false where profile_id = 'p_00042'"
        )  # unsubscribed somewhere
        again = run_sync(con, sync)
        assert (again.withdrawn, again.removed, again.added) == (1, 0, 0)
        assert "p_00042" not in braze.users


def _destination(sync):
    from reverse_etl.engine import build_destination

    return build_destination(sync)


def test_salesforce_mirror_deletes_by_id_in_order_and_a_deleted_id_is_gone(con):
    from reverse_etl.destinations import Record

    with SalesforceEmulator() as salesforce:
        sync = sync_for(
            "salesforce",
            salesforce.url,
            object="Contact",
            mode="mirror",
            identifier={"source": "profile_id", "destination": "CDP_Profile_Id__c"},
            fields={"LastName": "last_name", "Email": "email"},
            filter="profile_id <= 'p_00210'",
        )
        assert run_sync(con, sync).added == 210
        con.execute("delete from marts.customers where profile_id <= 'p_00205'")
        second = run_sync(con, sync)
        assert (second.removed, second.failed) == (205, 0)
        deletes = [r for r in salesforce.requests if r["method"] == "DELETE"]
        assert [r["path"].split("ids=")[1].count(",") + 1 for r in deletes] == [200, 5]
        assert len(salesforce.records) == 5
        # Deleting again: ENTITY_IS_DELETED counts as gone, not as a failure.
        outcomes = _destination(sync).erase(
            [Record("p_00001", "p_00001", {}, "003000000000000001")]
        )
        assert [o.ok for o in outcomes] == [True]


def test_hubspot_gdpr_delete_is_permanent_and_blocks_recreation(con):
    from reverse_etl.destinations import Record

    with HubSpotEmulator() as hubspot:
        sync = sync_for("hubspot", hubspot.url)
        run_sync(con, sync)
        contact_id = hubspot.contacts["kunde1@example.org"]["id"]
        destination = _destination(sync)
        outcomes = destination.erase(
            [
                Record("p_00001", "kunde1@example.org", {}, contact_id),  # by HubSpot id
                Record("p_99999", "never.seen@example.org", {}, None),  # by email, not there
            ]
        )
        assert [o.ok for o in outcomes] == [True, True]
        assert "kunde1@example.org" not in hubspot.contacts  # gone, not archived
        bodies = [json.loads(r["body"]) for r in hubspot.requests if "gdpr" in r["path"]]
        assert bodies == [
            {"objectId": contact_id},
            {"objectId": "never.seen@example.org", "idProperty": "email"},
        ]
        # HubSpot blocklists an erased address it did not hold: it cannot be created again.
        [upsert] = destination.upsert([Record("p_99999", "never.seen@example.org", {}, None)])
        assert not upsert.ok and "blocklisted" in upsert.message


def test_file_erasure_rewrites_every_earlier_export(con, tmp_path):
    from reverse_etl.destinations import Record

    sync = sync_for(
        "file",
        "",
        object="customers",
        settings={"directory": str(tmp_path / "exports"), "format": "csv"},
        identifier={"source": "profile_id", "destination": "profile_id"},
        fields={"email": "email"},
    )
    run_sync(con, sync)
    con.execute("update marts.customers set email = 'neu@example.org' where profile_id = 'p_00007'")
    run_sync(con, sync)
    files = sorted((tmp_path / "exports").glob("customers_*.csv"))
    assert len(files) == 2
    _destination(sync).erase([Record("p_00007", "p_00007", {}, None)])
    text = "".join(f.read_text() for f in sorted((tmp_path / "exports").glob("customers_*")))
    assert "p_00007" not in text and "kunde7@" not in text and "neu@example.org" not in text
    assert text.count("p_00008") == 1  # everyone else stays


@pytest.mark.parametrize(
    ("destination", "answer"),
    [("hubspot", None), ("hubspot", []), ("braze", "ok"), ("salesforce", {"results": []})],
)
def test_an_undocumented_answer_fails_the_run_naming_destination_status_and_body(
    con, destination, answer
):
    from cdp.core.http import UnexpectedAnswer

    emulators = {
        "hubspot": HubSpotEmulator,
        "braze": BrazeEmulator,
        "salesforce": SalesforceEmulator,
    }
    with emulators[destination]() as emulator:
        emulator.answer_next(200, answer)
        sync = sync_for(
            destination,
            emulator.url,
            object="Contact" if destination == "salesforce" else "contacts",
            identifier={"source": "profile_id", "destination": "external_id"},
        )
        with pytest.raises(UnexpectedAnswer) as error:
            run_sync(con, sync)
    message = str(error.value)
    assert message.startswith(f"{destination} answered ") and "HTTP 200" in message
    body = "an empty body" if answer is None else json.dumps(answer, separators=(",", ":"))
    assert body in message
    status, calls, text = con.execute(
        "select status, calls, message from reverse_etl.sync_runs"
    ).fetchone()
    assert (status, calls) == ("failed", 1) and "UnexpectedAnswer" in text


def test_a_failed_run_records_its_calls_and_retries(con):
    with HubSpotEmulator() as hubspot:
        hubspot.start_outage(status=503)
        with pytest.raises(DeliveryError, match=r"hubspot: POST .* failed after 5 attempts"):
            run_sync(con, sync_for("hubspot", hubspot.url))
    assert con.execute(
        "select status, calls, retries, planned, added from reverse_etl.sync_runs"
    ).fetchone() == ("failed", 5, 4, 250, 0)


class _Interrupting:
    """A destination whose process is stopped (Ctrl-C) in the middle of a run."""

    batch_size, calls, supports_delete = 100, 0, False

    def upsert(self, records):
        raise KeyboardInterrupt


def test_a_run_that_died_is_marked_abandoned_when_the_next_starts(con):
    sync = sync_for("hubspot", "http://127.0.0.1:9")
    with pytest.raises(KeyboardInterrupt):
        run_sync(con, sync, destination=_Interrupting())
    assert con.execute("select status from reverse_etl.sync_runs").fetchall() == [("running",)]
    with HubSpotEmulator() as hubspot:
        run_sync(con, sync_for("hubspot", hubspot.url))
    runs = con.execute(
        "select status, message from reverse_etl.sync_runs order by started_at"
    ).fetchall()
    assert [r[0] for r in runs] == ["abandoned", "succeeded"]
    assert "stopped without finishing" in runs[0][1]


def test_ten_thousand_rejections_are_written_in_bulk_and_counted_per_attempt(con):
    con.execute("""insert into marts.customers
        select 'q_' || lpad(cast(i as varchar), 5, '0'), 'broken' || i, 'A', 'B', 'DE', false
        from range(1, 10001) t(i)""")
    with SalesforceEmulator() as salesforce:
        sync = sync_for(
            "salesforce",
            salesforce.url,
            object="Contact",
            identifier={"source": "profile_id", "destination": "CDP_Profile_Id__c"},
            fields={"LastName": "last_name", "Email": "email"},
            settings={"base_url": salesforce.url, "rate_limit_calls": 10_000, **FAST},
        )
        first = run_sync(con, sync)
        second = run_sync(con, sync)
    assert (first.added, first.failed, second.added, second.failed) == (250, 10_000, 0, 10_000)
    attempts = con.execute(
        "select min(attempts), max(attempts), count(*) from reverse_etl.sync_errors"
    ).fetchone()
    assert attempts == (2, 2, 10_000)


def _gated(destination, url, tmp_path, basis="consent"):
    objects = {"salesforce": "Contact", "braze": "users", "file": "customers"}
    ids = {"salesforce": "CDP_Profile_Id__c", "braze": "external_id", "hubspot": "email"}
    settings = {"directory": str(tmp_path)} if destination == "file" else {"base_url": url, **FAST}
    return sync_for(
        destination,
        url,
        object=objects.get(destination, "contacts"),
        identifier={
            "source": "email" if destination == "hubspot" else "profile_id",
            "destination": ids.get(destination, "profile_id"),
        },
        fields={"email": "email"} if destination != "salesforce" else {"LastName": "last_name"},
        purpose="email_marketing",
        channel="email",
        basis=basis,
        purpose_reason=None,
        settings=settings,
    )


def _held(destination, emulator, tmp_path) -> set[str]:
    """The profile ids the destination holds now."""
    if destination == "hubspot":
        return {
            c["properties"]["email"].removeprefix("kunde").split("@")[0]
            for c in emulator.live_contacts().values()
        }
    if destination == "salesforce":
        return {r["CDP_Profile_Id__c"] for r in emulator.records.values()}
    if destination == "braze":
        return set(emulator.users)
    if destination == "webhook":
        return {key.split("/")[-1] for key in emulator.records}
    rows = duckdb.sql(f"select profile_id from read_parquet('{tmp_path}/*.parquet')").fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize("destination", ["hubspot", "salesforce", "braze", "webhook", "file"])
def test_every_destination_is_told_when_consent_is_withdrawn(con, tmp_path, destination):
    con.execute("""create table marts.customer_consents as
        select profile_id, 'email_marketing' as purpose, 'email' as channel,
            profile_id <= 'p_00010' as is_granted
        from marts.customers""")
    # the same person refused email marketing by phone: that channel does not count here
    con.execute("""insert into marts.customer_consents
        values ('p_00003', 'email_marketing', 'phone', false)""")
    emulators = {
        "hubspot": HubSpotEmulator,
        "salesforce": SalesforceEmulator,
        "braze": BrazeEmulator,
        "webhook": WebhookEmulator,
    }
    with ExitStack() as stack:
        emulator = (
            stack.enter_context(emulators[destination]()) if destination in emulators else None
        )
        sync = _gated(destination, emulator.url if emulator else "", tmp_path)
        if destination == "file":
            sync = sync.model_copy(
                update={"settings": {"directory": str(tmp_path), "format": "parquet"}}
            )
        first = run_sync(con, sync)
        assert (first.added, first.withdrawn) == (10, 0)
        ids = {f"p_{i:05d}" for i in range(1, 11)}
        expected = (
            {i.removeprefix("p_").lstrip("0") for i in ids} if destination == "hubspot" else ids
        )
        assert _held(destination, emulator, tmp_path) == expected
        con.execute(
            "update marts.customer_consents set is_granted = false "
            "where profile_id = 'p_00004' and channel = 'email'"
        )
        again = run_sync(con, sync)
        assert (again.withdrawn, again.added, again.unchanged, again.failed) == (1, 0, 9, 0)
        if destination == "webhook":
            last = json.loads(emulator.requests[-1]["body"])
            assert last["action"] == "withdraw"
            assert [r["key"] for r in last["records"]] == ["p_00004"]
        else:
            held = _held(destination, emulator, tmp_path)
            assert ("4" if destination == "hubspot" else "p_00004") not in held
            assert len(held) == 9
        delivered = con.execute(
            "select action from reverse_etl.sync_deliveries where record_key = 'p_00004' "
            "order by delivered_at"
        ).fetchall()
        assert delivered == [("upsert",), ("withdraw",)]
        # consent given again: sent again as a new record
        con.execute(
            "update marts.customer_consents set is_granted = true where profile_id = 'p_00004'"
        )
        assert run_sync(con, sync).added == 1


def test_legitimate_interest_sends_everyone_but_those_who_objected(con, tmp_path):
    con.execute("""create table marts.customer_consents as
        select profile_id, 'email_marketing' as purpose, 'email' as channel,
            false as is_granted
        from marts.customers where profile_id in ('p_00001', 'p_00002')""")
    with BrazeEmulator() as braze:
        sync = _gated("braze", braze.url, tmp_path, basis="legitimate_interest")
        assert run_sync(con, sync).added == 248
        assert {"p_00001", "p_00002"}.isdisjoint(braze.users)


def test_sync_validate_finds_missing_columns_and_filters_and_skips_invalid_files(
    con, tmp_path, monkeypatch, capsys
):
    import sys

    from cdp.cli import app

    folder = tmp_path / "syncs"
    folder.mkdir()
    base = (
        "source: marts.customers\nprimary_key: profile_id\ndestination: braze\nobject: users\n"
        "identifier: {source: profile_id, destination: external_id}\n"
        "purpose: none\npurpose_reason: a test destination, nobody is contacted\n"
    )
    (folder / "good.yml").write_text("name: good\nfields: {email: email}\n" + base)
    (folder / "typo.yml").write_text(
        "name: typo\nfields: {email: e_mail}\nfilter: is_on_list\n" + base
    )
    (folder / "broken.yml").write_text("name: broken\nfields: [unclosed\n" + base)
    con.execute("create table marts.customer_consents (profile_id varchar)")
    con.close()
    monkeypatch.setenv("CDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("CDP_SYNCS_DIR", str(folder))

    def cdp(*args) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["cdp", *args])
        try:
            app(args=list(args), prog_name="cdp")
            code = 0
        except SystemExit as stop:
            code = stop.code
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    code, text = cdp("sync", "validate")
    assert code == 2
    assert f"{folder / 'typo.yml'}: fields.email: marts.customers has no column 'e_mail'" in text
    assert "broken.yml:" in text and "not valid YAML" in text
    assert "2 valid syncs, 2 problems" in text
    # the filter is checked once the columns are right
    (folder / "typo.yml").write_text(
        "name: typo\nfields: {email: email}\nfilter: is_on_list\n" + base
    )
    code, text = cdp("sync", "validate")
    assert code == 2 and f"{folder / 'typo.yml'}: filter: " in text and "is_on_list" in text
    # the invalid file does not stop a dry run of another sync
    monkeypatch.setenv("BRAZE_API_KEY", "test-token")
    code, text = cdp("sync", "run", "good", "--dry-run", "--json")
    assert code == 0, text
    assert json.loads(text[text.index("{") :])["added"] == 250


def test_an_email_change_updates_the_same_hubspot_contact(con):
    with HubSpotEmulator() as hubspot:
        sync = sync_for("hubspot", hubspot.url)
        run_sync(con, sync)
        contact_id = hubspot.live_contacts()["kunde7@example.org"]["id"]
        con.execute(
            "update marts.customers set email = 'anna.neu@example.org' where profile_id = 'p_00007'"
        )
        changed = run_sync(con, sync)
        assert (changed.changed, changed.added, changed.failed) == (1, 0, 0)
        contacts = hubspot.live_contacts()
        assert len(contacts) == 250 and "kunde7@example.org" not in contacts
        assert contacts["anna.neu@example.org"]["id"] == contact_id
        assert hubspot.requests[-1]["path"].endswith("/batch/update")
        # deleted in HubSpot meanwhile: the update finds nothing, the contact is upserted again
        hubspot.contacts.pop("anna.neu@example.org")
        con.execute("update marts.customers set first_name = 'Anna' where profile_id = 'p_00007'")
        again = run_sync(con, sync)
        assert (again.changed, again.failed) == (1, 0)
        assert hubspot.live_contacts()["anna.neu@example.org"]["properties"]["firstname"] == "Anna"


def _merge_profiles(con, loser: str, winner: str) -> None:
    """What an identity run does when two profiles turn out to be one person."""
    con.execute("""create table if not exists marts.identity_merges (event_type varchar,
        profile_id varchar, other_profile_id varchar, happened_at timestamp)""")
    con.execute("delete from marts.customers where profile_id = ?", [loser])
    con.execute("insert into marts.identity_merges values ('merge', ?, ?, now())", [winner, loser])


def test_a_profile_merge_merges_the_hubspot_contacts(con):
    with HubSpotEmulator() as hubspot:
        sync = sync_for("hubspot", hubspot.url)
        run_sync(con, sync)
        kept = hubspot.live_contacts()["kunde1@example.org"]["id"]
        gone = hubspot.live_contacts()["kunde2@example.org"]["id"]
        _merge_profiles(con, loser="p_00002", winner="p_00001")
        result = run_sync(con, sync)
        assert (result.merged, result.removed, result.failed) == (1, 0, 0)
        merge = json.loads(hubspot.requests[-1]["body"])
        assert merge == {"primaryObjectId": kept, "objectIdToMerge": gone}
        contacts = hubspot.live_contacts()
        assert "kunde2@example.org" not in contacts and len(contacts) == 249
        assert contacts["kunde1@example.org"]["mergedObjectIds"] == [gone]
        state = con.execute(
            "select count(*) from reverse_etl.sync_state where record_key = 'p_00002'"
        ).fetchone()
        assert state == (0,)
        assert run_sync(con, sync).calls == 0  # done once


def test_a_profile_merge_reaches_braze_salesforce_and_the_webhook(con):
    with BrazeEmulator() as braze, SalesforceEmulator() as salesforce, WebhookEmulator() as hook:
        # keyed by profile id, each in its API's own words
        keyed = {"braze": ("users", "external_id"), "salesforce": ("Contact", "CDP_Profile_Id__c")}
        syncs = [
            sync_for(
                name,
                emulator.url,
                object=keyed.get(name, ("customer",))[0],
                identifier={
                    "source": "profile_id",
                    "destination": keyed.get(name, ("", "profile_id"))[1],
                },
                fields={"LastName": "last_name"},
            )
            for name, emulator in (("braze", braze), ("salesforce", salesforce), ("webhook", hook))
        ]
        for sync in syncs:
            run_sync(con, sync)
        _merge_profiles(con, loser="p_00002", winner="p_00001")
        for sync in syncs:
            assert run_sync(con, sync).merged == 1, sync.destination
        assert braze.merged == {"p_00002": "p_00001"} and "p_00002" not in braze.users
        assert "p_00002" not in {r["CDP_Profile_Id__c"] for r in salesforce.records.values()}
        last = json.loads(hook.requests[-1]["body"])
        assert last["action"] == "merge"
        assert last["records"][0]["fields"] == {
            "merged_into": "p_00001",
            "merged_into_id": "p_00001",
        }


def test_update_mode_updates_contacts_others_created_and_creates_none(con):
    with HubSpotEmulator() as hubspot:
        # created in HubSpot by someone else (a form, a sales rep): 20 of the 250
        someone = sync_for("hubspot", hubspot.url, name="created_elsewhere")
        con.execute("create view marts.few as select * from marts.customers limit 20")
        run_sync(con, someone.model_copy(update={"source": "marts.few"}))
        assert len(hubspot.live_contacts()) == 20
        update = sync_for("hubspot", hubspot.url, name="update_only", mode="update")
        con.execute("update marts.customers set last_name = 'Neu'")
        result = run_sync(con, update)
        assert (result.added, result.absent, result.failed) == (20, 230, 0)
        contacts = hubspot.live_contacts()
        assert len(contacts) == 20  # none created
        assert {c["properties"]["lastname"] for c in contacts.values()} == {"Neu"}


def test_update_mode_is_refused_where_the_api_cannot_update_without_creating(tmp_path):
    path = tmp_path / "sf.yml"
    path.write_text(
        "name: sf\nsource: marts.customers\nprimary_key: profile_id\ndestination: salesforce\n"
        "object: Contact\nidentifier: {source: profile_id, destination: CDP_Profile_Id__c}\n"
        "fields: {LastName: last_name}\nmode: update\npurpose: sales_contact\nchannel: email\n"
    )
    with pytest.raises(SyncConfigError, match="mode: salesforce cannot update records without"):
        load_sync(path)


def test_pointing_a_sync_at_another_account_sends_everything_there(con):
    """The demo's emulator first, then a real account: what the first confirmed says nothing
    about the second."""
    with HubSpotEmulator() as demo, HubSpotEmulator() as real:
        assert run_sync(con, sync_for("hubspot", demo.url)).added == 250
        moved = run_sync(con, sync_for("hubspot", real.url))
        assert (moved.added, moved.unchanged) == (250, 0)
        assert "hubspot address or object changed since" in moved.message
        assert len(real.live_contacts()) == 250
        again = run_sync(con, sync_for("hubspot", real.url))
        assert (again.added, again.unchanged, again.message) == (0, 250, "")


TYPED_ROWS = """
    ('p_1', 'eins@example.org', timestamp '2024-01-02 03:04:05',
        timestamptz '2024-01-02 03:04:05+00', date '2024-01-02', 12.50, 0.25,
        'sagt "hallo" – grüß dich', true, 3),
    ('p_2', 'zwei@example.org', timestamp '2024-01-02 03:04:05.123456', null, null, null,
        'NaN', null, false, null),
    ('p_3', 'drei@example.org', null, null, null, -0.5, 'Infinity', '', null, -7)"""
TYPED_EXPECTED = {
    "eins@example.org": {
        "at": "2024-01-02T03:04:05",
        "on": "2024-01-02",
        "amount": 12.5,
        "ratio": 0.25,
        "note": 'sagt "hallo" – grüß dich',
        "flag": True,
        "visits": 3,
    },
    "zwei@example.org": {
        "at": "2024-01-02T03:04:05.123456",
        "on": None,
        "amount": None,
        "ratio": None,  # NaN: JSON has no such number
        "note": None,
        "flag": False,
        "visits": None,
    },
    "drei@example.org": {
        "at": None,
        "on": None,
        "amount": -0.5,
        "ratio": None,
        "note": "",
        "flag": None,
        "visits": -7,
    },
}


@pytest.fixture(params=["duckdb", "postgres"])
def typed_warehouse(request, tmp_path):
    """A warehouse of either kind holding values of every common type, NaN and infinity."""
    from cdp.core.warehouse import DuckDBWarehouse, PostgresWarehouse

    columns = """profile_id varchar, email varchar, seen_at timestamp, seen_at_tz timestamptz,
        on_date date, amount decimal(10, 2), ratio double precision, note varchar, flag boolean,
        visits integer"""
    with ExitStack() as stack:
        if request.param == "duckdb":
            warehouse = DuckDBWarehouse(duckdb.connect(str(tmp_path / "typed.duckdb")))
        else:
            from tests.conftest import pg_database

            warehouse = PostgresWarehouse(**stack.enter_context(pg_database("cdp_typed_values")))
        stack.callback(warehouse.close)
        warehouse.execute("create schema marts")
        warehouse.execute(f"create table marts.typed ({columns})")
        warehouse.execute(f"insert into marts.typed values {TYPED_ROWS}")
        yield warehouse


@pytest.mark.parametrize("destination", ["hubspot", "braze"])
def test_values_of_every_type_reach_the_destination_as_json(typed_warehouse, destination):
    """The warehouse encodes each record's fields: timestamps in ISO 8601, decimals as numbers,
    NaN and infinity as null (valid JSON), text as it is; HubSpot embeds the encoded fields,
    Braze reads them as values."""
    import datetime as dt

    fields = {
        "at": "seen_at",
        "at_tz": "seen_at_tz",
        "on": "on_date",
        "amount": "amount",
        "ratio": "ratio",
        "note": "note",
        "flag": "flag",
        "visits": "visits",
    }
    target = HubSpotEmulator() if destination == "hubspot" else BrazeEmulator()
    with target:
        sync = sync_for(destination, target.url, source="marts.typed", fields=fields)
        result = run_sync(typed_warehouse, sync)
        assert (result.status, result.added) == ("succeeded", 3)
        held = target.held()
    at_tz = held["eins@example.org"].pop("at_tz")
    assert dt.datetime.fromisoformat(at_tz) == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    for email, expected in TYPED_EXPECTED.items():
        got = {name: held[email].get(name) for name in expected}
        assert got == expected, email


def test_the_delivery_log_gives_each_delivery_its_run_destination_object_and_fields(con):
    """A run's destination, object and fields are stored once, in sync_runs, not on each of its
    deliveries; the log joins them back, also for rows an earlier version wrote in full."""
    con.execute("create schema reverse_etl")
    con.execute("""create table reverse_etl.sync_deliveries (run_id varchar, sync_name varchar,
        record_key varchar, destination varchar, object varchar, action varchar, fields varchar,
        destination_id varchar, delivered_at timestamp)""")
    con.execute("""insert into reverse_etl.sync_deliveries values ('earlier', 'test_hubspot',
        'p_00001', 'hubspot', 'contacts', 'upsert', 'email, firstname', '7',
        timestamp '2026-01-01 00:00')""")
    # No run has made the view yet (a read-only export must still read): the table itself.
    assert delivery_log(as_warehouse(con)) == "reverse_etl.sync_deliveries"
    with HubSpotEmulator() as hubspot:
        sync = sync_for("hubspot", hubspot.url, mode="mirror")
        assert run_sync(con, sync).added == 250
        con.execute("delete from marts.customers where profile_id = 'p_00001'")
        assert run_sync(con, sync).removed == 1
    log = delivery_log(as_warehouse(con))
    assert log == "reverse_etl.delivery_log"
    rows = con.execute(
        f"select run_id = 'earlier', destination, object, action, fields from {log} "
        "where record_key = 'p_00001' order by delivered_at"
    ).fetchall()
    assert rows == [
        (True, "hubspot", "contacts", "upsert", "email, firstname"),
        (False, "hubspot", "contacts", "upsert", "email, firstname, lastname, country"),
        (False, "hubspot", "contacts", "delete", ""),
    ]
    written_per_row = con.execute(
        "select count(*) from reverse_etl.sync_deliveries "
        "where destination is not null or object is not null or fields is not null"
    ).fetchone()[0]
    assert written_per_row == 1  # only the earlier version's row


def test_syncs_starting_side_by_side_on_postgres_set_up_their_schema_once():
    """Three sessions make the state schema at once on an empty PostgreSQL database: its
    `create ... if not exists` alone lets two of them collide on the catalog."""
    import threading

    from cdp.core.warehouse import PostgresWarehouse
    from tests.conftest import pg_database

    errors = []
    with pg_database("cdp_state_race") as settings:
        for _ in range(5):
            with PostgresWarehouse(**settings) as con:
                con.execute("drop schema if exists reverse_etl cascade")
            start = threading.Barrier(3)

            def set_up(start=start):
                try:
                    with PostgresWarehouse(**settings) as con:
                        start.wait()
                        ensure_state(con)
                except Exception as exc:  # collected: the assertion names them
                    errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])

            sessions = [threading.Thread(target=set_up) for _ in range(3)]
            for session in sessions:
                session.start()
            for session in sessions:
                session.join()
    assert errors == []
