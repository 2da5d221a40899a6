"""Session set-up: one demo data set and one warehouse built by the real Dagster job.

Environment variables are set before anything imports the Dagster definitions, which read them.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from cdp.core.config import PROJECT_ROOT

SESSION_DIR = Path(tempfile.mkdtemp(prefix="cdp-tests-"))
# in a folder that does not exist yet, as on a fresh clone
os.environ["CDP_WAREHOUSE"] = str(SESSION_DIR / "warehouse" / "warehouse.duckdb")
os.environ["CDP_LANDING"] = str(SESSION_DIR / "landing")
os.environ["CDP_REFRESH_MANIFEST"] = "1"
os.environ.pop("DAGSTER_HOME", None)

# Where dbt writes for the session's target: the parsed manifest, and a folder per Dagster step.
DBT_TARGET = PROJECT_ROOT / os.environ.get("DBT_TARGET_PATH", "target/duckdb")
MANIFEST = DBT_TARGET / "manifest.json"

# The default demo set (`make demo`): identity quality targets are stated for it.
TEST_PEOPLE = 10_000
TEST_SEED = 42


# The PostgreSQL server tests run against (CI has one; tests skip with a message without it).
PG = {
    "host": os.environ.get("CDP_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("CDP_PG_PORT", "5432")),
    "user": os.environ.get("CDP_PG_USER", "postgres"),
    "dbname": os.environ.get("CDP_PG_TEST_DATABASE", "test"),
}


def pg_connect(dbname: str | None = None):
    import psycopg2

    return psycopg2.connect(connect_timeout=3, **{**PG, "dbname": dbname or PG["dbname"]})


def pg_answers() -> bool:
    try:
        pg_connect().close()
        return True
    except Exception:
        return False


@contextmanager
def pg_database(name: str):
    """An empty PostgreSQL database for one test (its connection settings), dropped after it;
    the test skips, saying why, without a server."""
    if not pg_answers():
        pytest.skip(f"no PostgreSQL answers at {PG['host']}:{PG['port']}")
    admin = pg_connect("postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"drop database if exists {name} with (force)")
        cursor.execute(f"create database {name}")
    try:
        yield {**PG, "dbname": name}
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"drop database if exists {name} with (force)")
        admin.close()


def dbt_command(*args: str, env: dict[str, str], command: str = "build"):
    """A dbt command of the project with extra environment (which warehouse), its output kept."""
    from cdp.core.config import PROJECT_ROOT

    return subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), command, "--profiles-dir", str(PROJECT_ROOT)]
        + ["--quiet", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )


def dbt_build(*args: str, env: dict[str, str], command: str = "build") -> None:
    """`dbt build` (or another command) of the project, failing loudly."""
    done = dbt_command(*args, env=env, command=command)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def generate(out: Path, people: int = TEST_PEOPLE, seed: int = TEST_SEED, **kwargs):
    from cdp.demo.generate import Generator

    return Generator(people, seed=seed, out=out, **kwargs).run()


@pytest.fixture(scope="session")
def landing() -> Path:
    path = Path(os.environ["CDP_LANDING"])
    generate(path)
    return path


@pytest.fixture(scope="session")
def defs():
    from orchestration.definitions import defs

    return defs()


@pytest.fixture(scope="session")
def full_run(landing, defs):
    """The demo's job, run once in-process against the session warehouse, with dbt's debug log
    file kept (production runs keep none: cdp.core.config.dbt_log_file_args)."""
    from dagster import DagsterInstance

    from cdp.ingest.enrichment import KEY_ENV, URL_ENV
    from cdp.ingest.firmographics_emulator import FirmographicsEmulator

    with FirmographicsEmulator(token="test-token") as api, DagsterInstance.ephemeral() as instance:
        os.environ.update({URL_ENV: api.url, KEY_ENV: "test-token", "DBT_LOG_LEVEL_FILE": "debug"})
        result = defs.resolve_job_def("full_graph").execute_in_process(
            instance=instance, raise_on_error=False
        )
    for name in (URL_ENV, KEY_ENV, "DBT_LOG_LEVEL_FILE"):  # later runs skip enrichment
        os.environ.pop(name)
    return result


@pytest.fixture
def warehouse(full_run):
    """A read-only connection to the warehouse the full run built."""
    con = duckdb.connect(os.environ["CDP_WAREHOUSE"], read_only=True)
    yield con
    con.close()


GOLDEN_COLUMNS = (
    "profile_id, is_identified, first_name, last_name, full_name, email, all_emails, phone, "
    "street, postal_code, city, country_code, birth_date, company_name, crm_lead_status, "
    "crm_owner_name, has_shop_account, has_loyalty_card, is_on_email_list, is_in_crm, sources, "
    "record_count, first_seen_at, last_seen_at"
)


def _rebuilt_duckdb(tmp_path_factory, name: str, *dbt_args: str):
    """The session's raw tables alone, built again on DuckDB, as PostgreSQL and Spark build
    them from empty schemas."""
    from cdp.core.sql import quote

    path = tmp_path_factory.mktemp(name) / "warehouse.duckdb"
    shutil.copy(os.environ["CDP_WAREHOUSE"], path)
    with duckdb.connect(str(path)) as con:
        schemas = con.execute(
            """select distinct schema_name from information_schema.schemata
               where catalog_name = current_database()
                 and schema_name not in ('raw', 'main', 'information_schema', 'pg_catalog')"""
        ).fetchall()
        for (schema,) in schemas:
            con.execute(f"drop schema {quote(schema)} cascade")
    dbt_build(*dbt_args, env={"CDP_WAREHOUSE": str(path)})
    return duckdb.connect(str(path), read_only=True)


@pytest.fixture(scope="session")
def duck_rebuilt(full_run, tmp_path_factory):
    """The same raw data built on DuckDB from empty schemas, with the Splink matcher."""
    con = _rebuilt_duckdb(tmp_path_factory, "rebuilt")
    yield con
    con.close()


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_DIR, ignore_errors=True)
