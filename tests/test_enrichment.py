"""Firmographics enrichment against the company-API emulator: cached, rate limited, and never
blocking a run when the API misbehaves."""

import duckdb
import pytest
from dagster import materialize

from cdp.core.http import AuthenticationFailed
from cdp.ingest.enrichment import (
    CACHE,
    KEY_ENV,
    RPS_ENV,
    URL_ENV,
    FirmographicsClient,
    enrich,
)
from cdp.ingest.firmographics_emulator import FirmographicsEmulator
from orchestration.ingest.enrichment import company_firmographics
from orchestration.resources import WarehouseResource

COMPANY_DOMAINS = [f"firma{i}.de" for i in range(40)]


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema raw")
    con.execute("create table raw.crm__contacts (email varchar)")
    con.execute("create table raw.crm__accounts (domain varchar)")
    emails = [f"a.b@{d}" for d in COMPANY_DOMAINS[:30]] + ["x@gmx.de", "y@GMAIL.com", "broken"]
    con.executemany("insert into raw.crm__contacts values (?)", [[e] for e in emails])
    con.executemany(
        "insert into raw.crm__accounts values (?)",
        [[f" {d.upper()} "] for d in COMPANY_DOMAINS[25:]],
    )
    yield con
    con.close()


def statuses(con) -> dict[str, int]:
    return dict(con.execute(f"select lookup_status, count(*) from {CACHE} group by 1").fetchall())


def test_company_domains_are_looked_up_once_and_cached(con):
    with FirmographicsEmulator(token="k", queued_share=0.2) as api:
        first = enrich(con, FirmographicsClient(api.url, "k"))
        assert first.domains == len(COMPANY_DOMAINS)  # private providers and junk skipped
        assert sum(statuses(con).values()) == len(COMPANY_DOMAINS)
        assert set(api.lookups) == set(COMPANY_DOMAINS)
        pending = statuses(con).get("pending", 0)
        assert pending > 0  # the API queued some first lookups

        second = enrich(con, FirmographicsClient(api.url, "k"))
        # only the queued ones are asked again, and now answered
        assert second.looked_up == pending and second.calls == pending
        assert "pending" not in statuses(con)

        third = enrich(con, FirmographicsClient(api.url, "k"))
        assert third.calls == 0 and third.cached == len(COMPANY_DOMAINS)

    found = con.execute(
        f"select email_domain, company_name, employee_count, annual_revenue_eur from {CACHE} "
        "where lookup_status = 'found' order by 1 limit 1"
    ).fetchone()
    company = api.company(found[0])
    assert found[1:3] == (company["name"], company["metrics"]["employees"])
    assert float(found[3]) == pytest.approx(company["metrics"]["annualRevenue"] * 0.92)


def test_a_lookup_still_pending_leaves_its_row_as_it_was(con):
    """Rewriting unanswered rows would change the cache every run and rebuild what reads it."""

    def rows():
        return con.execute(f"select * from {CACHE} order by email_domain").fetchall()

    with FirmographicsEmulator(token="k", queued_share=0.2) as api:
        enrich(con, FirmographicsClient(api.url, "k"))
    before = rows()
    assert statuses(con).get("pending", 0) > 0
    # a new API process queues the same first lookups again
    with FirmographicsEmulator(token="k", queued_share=0.2) as api:
        again = enrich(con, FirmographicsClient(api.url, "k"))
    assert again.counts == {"pending": statuses(con)["pending"]}
    assert rows() == before
    with FirmographicsEmulator(token="k", queued_share=0.0) as api:
        answered = enrich(con, FirmographicsClient(api.url, "k"))
    assert answered.looked_up == again.looked_up and "pending" not in statuses(con)


def test_rate_limit_answers_are_waited_out_and_nothing_is_lost(con):
    with FirmographicsEmulator(token="k", rate_limit=(10, 1.0), queued_share=0) as api:
        client = FirmographicsClient(api.url, "k", calls_per_second=40, max_retries=8)
        result = enrich(con, client)
    assert client.transport.stats.throttled > 0  # the API said 429 and we waited
    assert result.looked_up == len(COMPANY_DOMAINS)
    assert "error" not in statuses(con)


def test_the_demo_asks_its_emulated_api_at_that_api_quota_without_a_429(tmp_path, monkeypatch):
    from contextlib import ExitStack

    from cdp.demo.destinations import start_enrichment_emulator

    for name in (URL_ENV, KEY_ENV, RPS_ENV):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema raw")
    con.execute("create table raw.crm__contacts (email varchar)")
    con.execute("create table raw.crm__accounts (domain varchar)")
    con.executemany(
        "insert into raw.crm__contacts values (?)", [[f"a@firma{i}.de"] for i in range(150)]
    )
    with ExitStack() as stack:
        api = start_enrichment_emulator(stack)
        client = FirmographicsClient.from_env()
        calls, period = api.rate_limit
        assert client.transport.limiter.calls == int(calls / period * 0.9)
        result = enrich(con, client)
    assert result.looked_up == 150 and client.transport.stats.throttled == 0


def test_an_api_outage_stops_early_without_failing_and_the_next_run_catches_up(con):
    with FirmographicsEmulator(token="k", queued_share=0) as api:
        api.start_outage(after_requests=3, status=503)
        down = enrich(con, FirmographicsClient(api.url, "k", max_retries=1))
        assert "in a row" in down.stopped_because
        assert down.counts["error"] == 5 and down.deferred == len(COMPANY_DOMAINS) - 8
        api.end_outage()
        back = enrich(con, FirmographicsClient(api.url, "k"))
    assert back.looked_up == len(COMPANY_DOMAINS) - 3  # the failed ones and the deferred
    assert set(statuses(con)) <= {"found", "not_found"}


def test_a_wrong_key_is_refused_and_the_asset_still_succeeds(con, tmp_path, monkeypatch):
    path = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    )
    db_path = path.fetchone()[0]
    with FirmographicsEmulator(token="right") as api:
        with pytest.raises(AuthenticationFailed, match="HTTP 401"):
            enrich(con, FirmographicsClient(api.url, "wrong"))
        assert len(api.requests) == 1  # the first refusal stops the lookups
        con.close()
        monkeypatch.setenv(URL_ENV, api.url)
        monkeypatch.setenv(KEY_ENV, "wrong")
        result = materialize(
            [company_firmographics()],
            resources={"warehouse": WarehouseResource(path=db_path, landing_dir=str(tmp_path))},
        )
    assert result.success
    metadata = result.asset_materializations_for_node("enrichment__company_firmographics")[0]
    assert "HTTP 401" in metadata.metadata["skipped"].value
    assert "wrong" not in str(metadata.metadata)  # the key is never echoed


def test_enriched_companies_reach_lead_scoring(warehouse):
    found = warehouse.execute(f"select count(*) from {CACHE} where lookup_status = 'found'")
    found = found.fetchone()[0]
    staged = warehouse.execute("select count(*) from staging.stg_enrichment__companies")
    assert found == staged.fetchone()[0] > 0
    # the domain join of lead scoring finds the companies of the CRM's contacts
    matched = warehouse.execute(
        """select count(*) from intermediate.int_lead_features f
           join staging.stg_enrichment__companies e
             on split_part(f.email, '@', 2) = e.email_domain"""
    ).fetchone()[0]
    assert matched > 0
