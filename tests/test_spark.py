"""The dbt project on Apache Spark (dbt-spark with a local in-process session, Java 17): the raw
tables the DuckDB run loaded are exported as Parquet (`cdp export-raw`) and registered as Spark
tables; dbt builds the match candidates, `cdp.identity.spark` scores them with Splink, and
`dbt build --target spark` must pass every model, unit test and data test but the snapshots (they
need a table format with MERGE, such as Delta, on a cluster) and give the same golden records as
DuckDB with its matcher.

Slow (18 minutes on 2 cores shared with a test run) and needs the `spark` extra: `make
test-spark`, not part of `make test`.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cdp.core.config import PROJECT_ROOT
from cdp.ingest.declared import DECLARED_RELATIONS
from cdp.ingest.load import export_raw_parquet
from cdp.ingest.sources import tables
from tests.conftest import GOLDEN_COLUMNS

DBT = str(Path(sys.executable).parent / "dbt")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("pyspark") is None or shutil.which("java") is None,
        reason="needs Java and the spark extra: pip install -e '.[spark]' (make test-spark)",
    ),
]
# Snapshots and the models built on them need MERGE (Delta, Iceberg, Hudi), not plain Parquet.
WITHOUT_SNAPSHOTS = [
    "--exclude",
    "resource_type:snapshot",
    "customer_changes+",
    "audience_membership_history+",
    "audience_sizes+",
]


def _env(folder: Path) -> dict:
    return {
        **os.environ,
        "CDP_SPARK_WAREHOUSE": str(folder / "spark"),
        "DBT_TARGET_PATH": str(folder / "target"),
    }


def _dbt(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DBT, "--no-use-colors", *args, "--target", "spark", "--profiles-dir", str(PROJECT_ROOT)],
        cwd=PROJECT_ROOT,
        env=_env(folder),
        capture_output=True,
        text=True,
        timeout=3600,  # the machine may be shared with a test run
    )


def _matcher(folder: Path) -> subprocess.CompletedProcess:
    """The documented step between the dbt steps, in its own process as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "cdp.identity.spark"],
        cwd=PROJECT_ROOT,
        env=_env(folder),
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.fixture(scope="module")
def spark_build(full_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark")
    with duckdb.connect(os.environ["CDP_WAREHOUSE"], read_only=True) as con:
        exported = export_raw_parquet(con, folder / "raw")
    registered = _dbt(
        folder,
        "run-operation",
        "register_raw_parquet",
        "--args",
        json.dumps({"folder": str(folder / "raw"), "tables": sorted(exported)}),
    )
    assert registered.returncode == 0, registered.stdout[-3000:]
    # tests that also read models after the matcher wait for the second build
    candidates = _dbt(
        folder,
        "build",
        "--select",
        "+int_match_candidates",
        "--indirect-selection",
        "cautious",
        *WITHOUT_SNAPSHOTS,
    )
    assert candidates.returncode == 0, candidates.stdout[-3000:]
    matched = _matcher(folder)
    assert matched.returncode == 0, matched.stderr[-3000:]
    assert "pairs kept" in matched.stdout
    return _dbt(folder, "build", *WITHOUT_SNAPSHOTS), folder, exported


@pytest.fixture(scope="module")
def spark(spark_build):
    """A Spark session on the metastore and tables dbt built (dbt's session has ended)."""
    from cdp.identity.spark import session as spark_session

    before = os.environ.get("CDP_SPARK_WAREHOUSE")
    os.environ["CDP_SPARK_WAREHOUSE"] = str(spark_build[1] / "spark")
    try:
        session = spark_session()
    finally:
        if before is None:
            del os.environ["CDP_SPARK_WAREHOUSE"]
        else:
            os.environ["CDP_SPARK_WAREHOUSE"] = before
    yield session
    session.stop()


def test_every_model_and_test_passes_on_spark(spark_build):
    build, _, exported = spark_build
    assert build.returncode == 0, build.stdout[-5000:]
    assert "ERROR=0" in build.stdout and "PASS=" in build.stdout
    assert set(exported) >= {t.key for t in tables()} | {
        f"declared__{name}" for name in DECLARED_RELATIONS
    }


def test_spark_stages_the_same_rows_as_duckdb(spark, warehouse):
    for t in tables():
        model = f"staging.stg_{t.source}__{t.name}"
        on_spark = spark.sql(f"select count(*) from {model}").collect()[0][0]
        assert on_spark == warehouse.execute(f"select count(*) from {model}").fetchall()[0][0]


def test_spark_scores_the_same_pairs_as_duckdb(spark, duck_rebuilt):
    query = (
        "select record_key_l, record_key_r, match_probability"
        " from intermediate.int_identity_matches order by 1, 2"
    )
    on_spark = [tuple(row) for row in spark.sql(query).collect()]
    on_duck = duck_rebuilt.execute(query).fetchall()
    assert len(on_duck) > 1000
    assert [r[:2] for r in on_spark] == [r[:2] for r in on_duck]
    assert max(abs(s[2] - d[2]) for s, d in zip(on_spark, on_duck, strict=True)) < 0.01


def test_the_same_golden_records_on_spark_and_duckdb(spark, duck_rebuilt):
    query = f"select {GOLDEN_COLUMNS} from marts.customers order by profile_id"
    on_spark = [tuple(row) for row in spark.sql(query).collect()]
    on_duck = duck_rebuilt.execute(query).fetchall()
    assert len(on_duck) > 10_000
    assert len(on_spark) == len(on_duck)
    different = [(d, s) for d, s in zip(on_duck, on_spark, strict=True) if d != s]
    assert different == [], different[:3]
