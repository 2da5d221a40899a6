"""The dbt project on Apache Spark (dbt-spark with a local in-process session, Java 17): the raw
tables the DuckDB run loaded are exported as Parquet (`cdp export-raw`) and registered as Spark
tables; `dbt build --target spark` must pass every model, unit test and data test but the
snapshots (they need a table format with MERGE, such as Delta, on a cluster) and give the same
golden records as DuckDB resolving with the same rules.

Slow (about 6 minutes) and needs the `spark` extra: `make test-spark`, not part of `make test`.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cdp.config import PROJECT_ROOT
from cdp.load import export_raw_parquet
from cdp.sources import TABLES
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


def _dbt(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DBT, "--no-use-colors", *args, "--target", "spark", "--profiles-dir", str(PROJECT_ROOT)]
        + ["--target-path", str(folder / "target")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "CDP_SPARK_WAREHOUSE": str(folder / "spark")},
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
        folder, "run-operation", "register_raw_parquet", "--args", f"{{folder: {folder / 'raw'}}}"
    )
    assert registered.returncode == 0, registered.stdout[-3000:]
    return _dbt(folder, "build", *WITHOUT_SNAPSHOTS), folder, exported


@pytest.fixture(scope="module")
def spark(spark_build):
    """A Spark session on the metastore and tables dbt built (dbt's session has ended)."""
    from pyspark.sql import SparkSession

    warehouse = spark_build[1] / "spark"
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", f"{warehouse}/tables")
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={warehouse}/metastore_db;create=true",
        )
        .enableHiveSupport()
        .getOrCreate()
    )
    yield session
    session.stop()


def test_every_model_and_test_passes_on_spark(spark_build):
    build, _, exported = spark_build
    assert build.returncode == 0, build.stdout[-5000:]
    assert "ERROR=0" in build.stdout and "PASS=" in build.stdout
    assert set(exported) == {t.key for t in TABLES}


def test_spark_stages_the_same_rows_as_duckdb(spark, warehouse):
    for t in TABLES:
        model = f"staging.stg_{t.source}__{t.name}"
        on_spark = spark.sql(f"select count(*) from {model}").collect()[0][0]
        assert on_spark == warehouse.execute(f"select count(*) from {model}").fetchall()[0][0]


def test_the_same_golden_records_on_spark_and_duckdb(spark, duck_deterministic):
    query = f"select {GOLDEN_COLUMNS} from marts.customers order by profile_id"
    on_spark = [tuple(row) for row in spark.sql(query).collect()]
    on_duck = duck_deterministic.execute(query).fetchall()
    assert len(on_duck) > 10_000
    assert len(on_spark) == len(on_duck)
    different = [(d, s) for d, s in zip(on_duck, on_spark, strict=True) if d != s]
    assert different == [], different[:3]
