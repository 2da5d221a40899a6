"""The whole project on the real PostgreSQL server: `cdp run` with CDP_TARGET=postgres loads the
landing files, builds every dbt model with its tests through the dispatched macros, enriches and
scores into PostgreSQL; syncs deliver from there and an erasure is carried out there. The result
must stage the same rows as DuckDB and, resolving with the same rules, give the same golden
records.
"""

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import duckdb
import pytest

from cdp.core.sql import quote
from cdp.core.warehouse import CDP_SCHEMAS
from cdp.demo.destinations import start_emulators
from cdp.ingest.sources import tables
from orchestration.project import PROJECT_ROOT
from reverse_etl.config import load_syncs
from tests.conftest import GOLDEN_COLUMNS, PG, pg_answers, pg_connect

CDP = str(Path(sys.executable).parent / "cdp")
pytestmark = pytest.mark.skipif(
    not pg_answers(), reason=f"no PostgreSQL answers at {PG['host']}:{PG['port']}"
)
PG_TARGET = {
    "CDP_TARGET": "postgres",
    "CDP_PG_HOST": PG["host"],
    "CDP_PG_PORT": str(PG["port"]),
    "CDP_PG_USER": PG["user"],
    "CDP_PG_DATABASE": PG["dbname"],
}


def _pg_rows(pg, sql: str, params=None) -> list[tuple]:
    with pg.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


@pytest.fixture(scope="module")
def pg_env(landing, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("dagster_home_pg")
    (home / "dagster.yaml").touch()
    return {**os.environ, **PG_TARGET, "DAGSTER_HOME": str(home), "COLUMNS": "200"}


@pytest.fixture(scope="module")
def postgres_build(pg_env):
    """`cdp run --emulate-apis` on PostgreSQL, from empty schemas."""
    pg = pg_connect()
    pg.autocommit = True
    with pg.cursor() as cur:
        for schema in sorted(CDP_SCHEMAS):
            cur.execute(f"drop schema if exists {quote(schema)} cascade")
    done = subprocess.run(
        [CDP, "run", "--emulate-apis"],
        cwd=PROJECT_ROOT,
        env=pg_env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    yield done, pg
    pg.close()


@pytest.fixture(scope="module")
def duck(full_run):
    con = duckdb.connect(os.environ["CDP_WAREHOUSE"], read_only=True)
    yield con
    con.close()


def test_the_whole_graph_runs_on_postgres(postgres_build):
    """Loads, every dbt model and test, enrichment, predictions: one successful Dagster run."""
    done, pg = postgres_build
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "postgresql://" in done.stdout + done.stderr
    loaded = dict(_pg_rows(pg, 'select table_key, sum(rows_new) from raw."_load_files" group by 1'))
    assert set(loaded) == {t.key for t in tables()}
    assert _pg_rows(pg, "select count(*) from raw.quarantine")[0][0] > 0
    found = _pg_rows(pg, "select count(*) from enrichment.company_firmographics")[0][0]
    assert found > 100
    scored = _pg_rows(
        pg,
        """select count(*), count(p.churn_probability) from marts.customer_traits t
        left join ml.customer_predictions p using (profile_id) where t.purchase_count > 0""",
    )[0]
    assert scored[0] > 1000 and scored[1] == scored[0]


def test_the_loader_keeps_and_quarantines_the_same_rows_on_both(postgres_build, duck):
    _, pg = postgres_build
    query = "select table_name, reason, count(*) from raw.quarantine group by 1, 2 order by 1, 2"
    assert _pg_rows(pg, query) == duck.execute(query).fetchall()
    for t in tables():
        count = f"select count(*) from raw.{quote(t.key)}"
        assert _pg_rows(pg, count) == duck.execute(count).fetchall(), t.key


def test_postgres_and_duckdb_stage_the_same_rows(postgres_build, duck):
    _, pg = postgres_build
    for t in tables():
        model = f"stg_{t.source}__{t.name}"
        with pg.cursor() as cur:
            cur.execute(f"select count(*) from staging.{model}")
            on_pg = cur.fetchone()[0]
        on_duck = duck.execute(f"select count(*) from staging.{model}").fetchall()[0][0]
        assert on_pg == on_duck, model


def test_normalized_values_are_identical_on_both_warehouses(postgres_build, duck):
    _, pg = postgres_build
    query = (
        "select contact_id, email, phone, mobile_phone, country_code, created_at, updated_at"
        " from staging.stg_crm__contacts order by contact_id"
    )
    with pg.cursor() as cur:
        cur.execute(query)
        on_pg = cur.fetchall()
    assert on_pg == duck.execute(query).fetchall()
    names = "select contact_id, first_name, last_name from staging.stg_crm__contacts order by 1"
    with pg.cursor() as cur:
        cur.execute(names)
        pg_names = cur.fetchall()
    duck_names = duck.execute(names).fetchall()
    same = sum(a == b for a, b in zip(pg_names, duck_names, strict=True))
    # initcap and DuckDB's word split differ only after apostrophes (D'Angelo / D'angelo).
    assert same / len(pg_names) > 0.99


def test_postgres_matches_probabilistically_like_duckdb(postgres_build, duck_rebuilt):
    """PostgreSQL has no dbt Python models: the Splink matcher runs as a Dagster step between
    the dbt steps. It must score the very pairs DuckDB's dbt Python model scores, link through
    them, and treat junk and shared identifiers alike."""
    _, pg = postgres_build
    pairs = (
        "select record_key_l, record_key_r, round(cast(match_probability as numeric), 6)"
        " from intermediate.int_identity_matches order by 1, 2"
    )
    quality = (
        "select identifier_kind, count(*) from intermediate.int_identifier_quality"
        " where is_blocklisted or is_shared group by 1 order by 1"
    )
    links = "select count(*) from intermediate.int_identity_edges where link_type = 'match'"
    on_pg = {sql: _pg_rows(pg, sql) for sql in (pairs, quality, links)}
    on_duck = {sql: duck_rebuilt.execute(sql).fetchall() for sql in (pairs, quality, links)}
    assert len(on_pg[pairs]) > 1000
    assert on_pg[links][0][0] > 0
    assert [r[:2] for r in on_pg[pairs]] == [r[:2] for r in on_duck[pairs]]
    # Training sums floats in parallel threads, so probabilities agree to rounding, not bits;
    # which pairs link is what the golden records depend on, and that must be equal.
    gaps = [
        abs(float(p[2]) - float(d[2])) for p, d in zip(on_pg[pairs], on_duck[pairs], strict=True)
    ]
    assert max(gaps) < 0.01, sorted(gaps)[-5:]
    assert on_pg[quality] == on_duck[quality]
    assert on_pg[links] == on_duck[links]


def test_the_same_golden_records_on_both_warehouses(postgres_build, duck_rebuilt):
    """Every golden record, value for value, is the same on DuckDB and PostgreSQL, matcher on."""
    _, pg = postgres_build
    with pg.cursor() as cur:
        cur.execute(f"select {GOLDEN_COLUMNS} from marts.customers order by profile_id")
        on_pg = cur.fetchall()
    on_duck = duck_rebuilt.execute(
        f"select {GOLDEN_COLUMNS} from marts.customers order by profile_id"
    ).fetchall()
    assert len(on_duck) > 5_000
    assert len(on_pg) == len(on_duck)
    different = [(d, p) for d, p in zip(on_duck, on_pg, strict=True) if d != p]
    assert different == [], different[:3]


@pytest.fixture(scope="module")
def pg_syncs(postgres_build, pg_env, tmp_path_factory):
    """Every shipped sync run from PostgreSQL by `cdp sync run`, to running emulators."""
    with ExitStack() as stack:
        saved = dict(os.environ)
        stack.callback(lambda: (os.environ.clear(), os.environ.update(saved)))
        os.environ["CDP_EXPORT_DIR"] = str(tmp_path_factory.mktemp("pg_exports"))
        emulators = start_emulators(stack)
        env = {**os.environ, **PG_TARGET, "DAGSTER_HOME": pg_env["DAGSTER_HOME"]}

        def sync(name: str) -> dict:
            done = subprocess.run(
                [CDP, "sync", "run", name, "--json"], env=env, capture_output=True, text=True
            )
            assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
            return json.loads(done.stdout)

        first = {name: sync(name) for name in load_syncs()}
        yield {"emulators": emulators, "env": env, "first": first, "sync": sync}


def test_syncs_deliver_from_postgres_and_resend_nothing_unchanged(pg_syncs, postgres_build):
    _, pg = postgres_build
    for name, result in pg_syncs["first"].items():
        assert result["status"] in ("succeeded", "partial"), (name, result)
        assert result["added"] > 0, name
        assert result["calls"] > 0 or name == "customers_file", name  # a file, no API calls
        confirmed = _pg_rows(
            pg, "select count(*) from reverse_etl.sync_state where sync_name = %s", [name]
        )[0][0]
        assert confirmed == result["added"] - result["failed"], name
    hubspot = pg_syncs["first"]["hubspot_contacts"]
    assert len(pg_syncs["emulators"]["hubspot"].live_contacts()) == hubspot["added"]
    again = pg_syncs["sync"]("hubspot_contacts")
    assert (again["calls"], again["added"], again["changed"]) == (0, 0, 0)
    assert again["unchanged"] == hubspot["added"] - hubspot["failed"]


def test_profile_access_export_and_insights_read_postgres(pg_syncs, postgres_build):
    """What ops and a data protection officer run, against PostgreSQL: the 360 view, the GDPR
    access export (with what the syncs sent) and the headline figures."""
    _, pg = postgres_build
    [(profile_id, email)] = _pg_rows(
        pg,
        """select c.profile_id, c.email from marts.customers c
        join reverse_etl.sync_state s on s.record_key = c.profile_id
            and s.sync_name = 'hubspot_contacts'
        order by c.profile_id desc limit 1""",
    )

    def cli(*args: str) -> dict:
        done = subprocess.run([CDP, *args], env=pg_syncs["env"], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return json.loads(done.stdout)

    view = cli("profile", "show", email, "--json")
    assert view["profile_id"] == profile_id and view["records"]
    export = cli("privacy", "export", profile_id)
    assert export["golden_record"]["email"] == email
    assert any(d["sync_name"] == "hubspot_contacts" for d in export["deliveries"])
    figures = cli("insights", "--json")
    assert figures["audiences"]


def _pg_mentions(pg, email: str, profile_id: str) -> dict[str, int]:
    """Every text column of every CDP table and view (but the hashes of the privacy schema)
    that still holds the email anywhere or the profile id exactly."""
    columns = _pg_rows(
        pg,
        """select table_schema, table_name, column_name from information_schema.columns
        where table_schema = any(%s) and table_schema <> 'privacy'
          and data_type in ('text', 'character varying')""",
        [sorted(CDP_SCHEMAS)],
    )
    found = {}
    for schema, table, column in columns:
        col = f"{quote(schema)}.{quote(table)}.{quote(column)}"
        hits = _pg_rows(
            pg,
            f"select count(*) from {quote(schema)}.{quote(table)} "
            f"where strpos(lower({col}), %s) > 0 or {col} = %s",
            [email, profile_id],
        )[0][0]
        if hits:
            found[f"{schema}.{table}.{column}"] = hits
    return found


def test_an_erasure_on_postgres_leaves_nothing_of_the_person(pg_syncs, postgres_build):
    _, pg = postgres_build
    profile_id, email = _pg_rows(
        pg,
        """select c.profile_id, c.email from marts.customers c
        join reverse_etl.sync_state s on s.record_key = c.profile_id
            and s.sync_name = 'hubspot_contacts'
        join marts.customer_identifiers i on i.profile_id = c.profile_id
            and i.identifier_kind = 'email' and i.identifier_value = c.email
            and not i.is_shared and not i.is_blocklisted
        where c.record_count >= 3 order by c.profile_id limit 1""",
    )[0]
    assert _pg_mentions(pg, email, profile_id)  # the scan sees them before
    done = subprocess.run(
        [CDP, "privacy", "erase", "--email", email, "--requested-by", "dpo"],
        env=pg_syncs["env"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _pg_rows(pg, "select status from privacy.erasure_requests") == [("verified",)]
    assert _pg_mentions(pg, email, profile_id) == {}
    held = json.dumps(pg_syncs["emulators"]["hubspot"].live_contacts()).lower()
    assert email not in held
