"""The same project on the real PostgreSQL server, through the dispatched macros.

The raw tables the DuckDB run loaded are copied into PostgreSQL; `dbt build --target postgres`
must pass every test there, stage the same rows and, resolving with the same rules, produce the
same golden records.
"""

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cdp.load import META_COLUMNS, quote
from cdp.sources import TABLES
from orchestration.project import PROJECT_ROOT
from tests.conftest import PG, dbt_build, pg_answers, pg_connect

DBT = str(Path(sys.executable).parent / "dbt")
pytestmark = pytest.mark.skipif(
    not pg_answers(), reason=f"no PostgreSQL answers at {PG['host']}:{PG['port']}"
)


def _copy_raw_to_postgres(duck, pg) -> None:
    with pg.cursor() as cur:
        for schema in ("raw", "staging", "reference", "intermediate", "marts", "snapshots"):
            cur.execute(f"drop schema if exists {schema} cascade")
        cur.execute("create schema raw")
        for t in TABLES:
            columns = [*t.column_names, *META_COLUMNS]
            types = {"_source_line": "bigint", "_loaded_at": "timestamp"}
            ddl = ", ".join(f"{quote(c)} {types.get(c, 'text')}" for c in columns)
            cur.execute(f"create table raw.{quote(t.key)} ({ddl})")
            buffer = io.StringIO()
            csv.writer(buffer).writerows(
                duck.execute(f"select * from raw.{quote(t.key)}").fetchall()
            )
            buffer.seek(0)
            cur.copy_expert(f"copy raw.{quote(t.key)} from stdin with (format csv)", buffer)
    pg.commit()


@pytest.fixture(scope="module")
def duck(full_run):
    con = duckdb.connect(os.environ["CDP_WAREHOUSE"], read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def postgres_build(duck):
    pg = pg_connect()
    _copy_raw_to_postgres(duck, pg)
    env = {**os.environ, "CDP_PG_DATABASE": PG["dbname"], "CDP_PG_HOST": PG["host"]}
    done = subprocess.run(
        [DBT, "--no-use-colors", "build", "--target", "postgres", "--profiles-dir", "."],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    yield done, pg
    pg.close()


def test_dbt_build_passes_on_postgres(postgres_build):
    done, _ = postgres_build
    assert done.returncode == 0, done.stdout[-3000:]
    assert "ERROR=0" in done.stdout


def test_postgres_and_duckdb_stage_the_same_rows(postgres_build, duck):
    _, pg = postgres_build
    for t in TABLES:
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


def test_identity_resolution_runs_on_postgres_with_the_same_deterministic_rules(
    postgres_build, duck
):
    """PostgreSQL has no dbt Python models: it resolves deterministically (no Splink pairs), so
    it finds at least as many profiles as DuckDB and links nothing through junk identifiers."""
    _, pg = postgres_build
    with pg.cursor() as cur:
        cur.execute("select count(*), count(*) filter (where is_identified) from marts.customers")
        profiles, identified = cur.fetchone()
        cur.execute(
            "select count(*) from intermediate.int_identity_edges where link_type = 'match'"
        )
        assert cur.fetchone() == (0,)
        cur.execute(
            "select identifier_kind, count(*) from intermediate.int_identifier_quality"
            " where is_blocklisted or is_shared group by 1 order by 1"
        )
        on_pg = cur.fetchall()
    on_duck = duck.execute(
        "select identifier_kind, count(*) from"
        " intermediate.int_identifier_quality"
        " where is_blocklisted or is_shared group by 1 order by 1"
    ).fetchall()
    assert on_pg == on_duck
    duck_profiles = duck.execute("select count(*) from marts.customers").fetchall()[0][0]
    assert profiles >= duck_profiles
    assert identified > 0


GOLDEN_COLUMNS = (
    "profile_id, is_identified, first_name, last_name, full_name, email, all_emails, phone, "
    "street, postal_code, city, country_code, birth_date, company_name, crm_lead_status, "
    "crm_owner_name, has_shop_account, has_loyalty_card, is_on_email_list, is_in_crm, sources, "
    "record_count, first_seen_at, last_seen_at"
)


@pytest.fixture(scope="module")
def duck_deterministic(full_run, tmp_path_factory):
    """The same raw data built on DuckDB with the rules PostgreSQL runs (no Splink pairs)."""
    path = tmp_path_factory.mktemp("deterministic") / "warehouse.duckdb"
    shutil.copy(os.environ["CDP_WAREHOUSE"], path)
    with duckdb.connect(str(path)) as con:  # from the raw tables alone, as PostgreSQL builds
        schemas = con.execute(
            """select distinct schema_name from information_schema.schemata
               where catalog_name = current_database()
                 and schema_name not in ('raw', 'main', 'information_schema', 'pg_catalog')"""
        ).fetchall()
        for (schema,) in schemas:
            con.execute(f"drop schema {quote(schema)} cascade")
    dbt_build("--vars", "{cdp_probabilistic_matching: false}", env={"CDP_WAREHOUSE": str(path)})
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def test_the_same_golden_records_on_both_warehouses(postgres_build, duck_deterministic):
    """Every golden record, value for value, is the same on DuckDB and PostgreSQL."""
    _, pg = postgres_build
    with pg.cursor() as cur:
        cur.execute(f"select {GOLDEN_COLUMNS} from marts.customers order by profile_id")
        on_pg = cur.fetchall()
    on_duck = duck_deterministic.execute(
        f"select {GOLDEN_COLUMNS} from marts.customers order by profile_id"
    ).fetchall()
    assert len(on_duck) > 10_000
    assert len(on_pg) == len(on_duck)
    different = [(d, p) for d, p in zip(on_duck, on_pg, strict=True) if d != p]
    assert different == [], different[:3]
