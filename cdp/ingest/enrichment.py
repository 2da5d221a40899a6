"""Firmographics enrichment: company data for the CRM's company email domains from an external
API (Clearbit-style GET /v2/companies/find?domain=), cached in `enrichment.company_firmographics`.

Enrichment must never hold up a run: answers are cached for a TTL, lookups are rate limited and
bounded by a time budget, a domain that fails is marked `error` and tried again next run, and
after a few failures in a row the API is taken as down and the rest waits for the next run.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import time
from dataclasses import dataclass, field
from decimal import Decimal

from cdp.core.config import PROJECT_ROOT
from cdp.core.http import (
    AuthenticationFailed,
    DeliveryError,
    HttpTransport,
    RateLimiter,
    RequestRejected,
)
from cdp.core.sql import utc_now
from cdp.core.warehouse import Warehouse

SCHEMA = "enrichment"
CACHE = f"{SCHEMA}.company_firmographics"
URL_ENV, KEY_ENV = "CDP_FIRMOGRAPHICS_URL", "CDP_FIRMOGRAPHICS_API_KEY"
RPS_ENV = "CDP_FIRMOGRAPHICS_RPS"
SEEDS = PROJECT_ROOT / "seeds"


class EnrichmentNotConfigured(RuntimeError):
    """No API URL or key in the environment."""


def _seed(name: str) -> list[dict]:
    with (SEEDS / f"{name}.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def free_email_domains() -> set[str]:
    return {row["email_domain"] for row in _seed("free_email_domains")}


def eur_per_usd() -> Decimal:
    rates = {row["currency"]: Decimal(row["eur_per_unit"]) for row in _seed("currency_rates")}
    return rates["USD"]


def ensure_cache(con: Warehouse) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(
        f"""create table if not exists {CACHE} (
            email_domain varchar primary key,
            lookup_status varchar not null,  -- found | not_found | pending | error
            company_name varchar,
            industry varchar,
            employee_count integer,
            country_code varchar,
            annual_revenue_eur decimal(18, 2),
            fetched_at timestamp not null,
            error varchar
        )"""
    )


def company_domains(con: Warehouse) -> list[str]:
    """Company email domains the CRM knows: its accounts' domains and its contacts' email
    domains, without private email providers."""
    tables = {
        name for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'raw'"
        ).fetchall()
    }  # fmt: skip
    parts = []
    if "crm__contacts" in tables:
        parts.append(
            "select lower(trim(split_part(email, '@', 2))) as d from raw.crm__contacts "
            "where email like '%@%.%'"
        )
    if "crm__accounts" in tables:
        parts.append("select lower(trim(domain)) from raw.crm__accounts")
    if not parts:
        return []
    rows = con.execute(
        f"select distinct d from ({' union all '.join(parts)}) as domains where d like '%.%' "
        "order by d"
    ).fetchall()
    free = free_email_domains()
    return [d for (d,) in rows if d not in free]


@dataclass
class Answer:
    status: str  # found | not_found | pending | error
    company: dict | None = None
    error: str = ""


class FirmographicsClient:
    """The company API, rate limited and retried like every other HTTP call we make."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        calls_per_second: int = 20,
        max_retries: int = 3,
        timeout: float = 5.0,
    ):
        self.transport = HttpTransport(
            base_url,
            {"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            RateLimiter(calls_per_second, 1.0),
            timeout=timeout,
            max_retries=max_retries,
            backoff=0.2,
            max_backoff=5.0,
            name="firmographics API",
        )

    @classmethod
    def from_env(cls) -> FirmographicsClient:
        url, key = os.environ.get(URL_ENV, ""), os.environ.get(KEY_ENV, "")
        if not url or not key:
            raise EnrichmentNotConfigured(f"set {URL_ENV} and {KEY_ENV} to enrich companies")
        return cls(url, key, calls_per_second=int(os.environ.get(RPS_ENV, "20")))

    @property
    def calls(self) -> int:
        return self.transport.stats.calls

    def find(self, domain: str) -> Answer:
        try:
            response = self.transport.request(
                "GET", "/v2/companies/find", params={"domain": domain}
            )
        except RequestRejected as exc:
            if exc.status == 404:
                return Answer("not_found")
            return Answer("error", error=str(exc)[:500])
        except AuthenticationFailed:
            raise  # a wrong key fails every lookup: stop and say so
        except DeliveryError as exc:
            return Answer("error", error=str(exc)[:500])
        if response.status_code == 202:
            return Answer("pending")
        return Answer("found", company=response.json())


@dataclass
class EnrichmentResult:
    domains: int = 0
    cached: int = 0
    looked_up: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    deferred: int = 0  # left for the next run (time budget or API down)
    calls: int = 0
    stopped_because: str = ""


def _row(domain: str, answer: Answer, now: dt.datetime, usd_rate: Decimal) -> tuple:
    c = answer.company or {}
    revenue = (c.get("metrics") or {}).get("annualRevenue")
    return (
        domain,
        answer.status,
        c.get("name"),
        (c.get("category") or {}).get("industry"),
        (c.get("metrics") or {}).get("employees"),
        (c.get("geo") or {}).get("countryCode"),
        round(Decimal(str(revenue)) * usd_rate, 2) if revenue is not None else None,
        now,
        answer.error or None,
    )


def enrich(
    con: Warehouse,
    client: FirmographicsClient,
    ttl_days: int = 30,
    time_budget_s: float = 60.0,
    max_consecutive_errors: int = 5,
    progress=None,
) -> EnrichmentResult:
    """Look up every company domain not in the cache, expired, pending or failed before."""
    ensure_cache(con)
    domains = company_domains(con)
    now = utc_now()
    fresh = {
        d
        for (d,) in con.execute(
            f"select email_domain from {CACHE} where lookup_status in ('found', 'not_found') "
            f"and fetched_at > ?",
            [now - dt.timedelta(days=ttl_days)],
        ).fetchall()
    }
    todo = [d for d in domains if d not in fresh]
    result = EnrichmentResult(domains=len(domains), cached=len(domains) - len(todo))
    usd_rate = eur_per_usd()
    started, errors_in_a_row, rows = time.monotonic(), 0, []
    columns = "email_domain, lookup_status, company_name, industry, employee_count, "
    columns += "country_code, annual_revenue_eur, fetched_at, error"
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns.split(", ")[1:])

    def flush() -> None:
        if rows:
            # A lookup still unanswered as last time (pending, or the same error) leaves its
            # row as it was: rewritten, it made every run rebuild what reads the cache.
            con.executemany(
                f"insert into {CACHE} as cached ({columns}) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                f"on conflict (email_domain) do update set {updates} "
                "where not (excluded.lookup_status in ('pending', 'error') "
                "and cached.lookup_status = excluded.lookup_status "
                "and cached.error is not distinct from excluded.error)",
                rows,
            )
            rows.clear()

    for i, domain in enumerate(todo):
        if time.monotonic() - started > time_budget_s:
            result.stopped_because = f"time budget of {time_budget_s:.0f} s used up"
            result.deferred = len(todo) - i
            break
        if errors_in_a_row >= max_consecutive_errors:
            result.stopped_because = f"{errors_in_a_row} failed lookups in a row: API down?"
            result.deferred = len(todo) - i
            break
        answer = client.find(domain)
        errors_in_a_row = errors_in_a_row + 1 if answer.status == "error" else 0
        result.counts[answer.status] = result.counts.get(answer.status, 0) + 1
        result.looked_up += 1
        rows.append(_row(domain, answer, now, usd_rate))
        if len(rows) >= 100:
            flush()
        if progress and (i + 1) % 100 == 0:
            progress(i + 1, len(todo))
    flush()
    result.calls = client.calls
    return result


def cache_summary(con: Warehouse) -> dict[str, int]:
    ensure_cache(con)
    return dict(con.execute(f"select lookup_status, count(*) from {CACHE} group by 1").fetchall())
