"""The probabilistic matcher on Apache Spark, between two dbt steps (dbt-spark runs no Python
models outside Databricks): dbt builds `int_match_candidates`, `score_matches` scores them with
the same incremental Splink scoring as on DuckDB and PostgreSQL and writes
`intermediate.identity_match_pairs`, then dbt builds the rest from the source
`matcher.identity_match_pairs`.

    dbt build --target spark --select +int_match_candidates --indirect-selection cautious
    python -m cdp.identity.spark
    dbt build --target spark

The Spark session is the dbt profile's `spark` target (its master and server-side parameters,
from the same environment variables), so both work on one metastore and warehouse folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jinja2
import yaml

from cdp.core.config import PROJECT_ROOT
from cdp.identity.matching import (
    MODEL_TABLE,
    PAIRS_TABLE,
    SCORED_TABLE,
    matcher_config,
    run_summary,
    score_frames,
)


def _profile_target() -> dict:
    """The `spark` output of profiles.yml, its env_var() calls rendered."""

    def env_var(name: str, default: str | None = None) -> str:
        value = os.environ.get(name, default)
        if value is None:
            raise KeyError(f"environment variable {name} is not set")
        return value

    text = (PROJECT_ROOT / "profiles.yml").read_text()
    environment = jinja2.Environment()
    # dbt's type filters; YAML reads the rendered values with their types
    for name in ("as_number", "as_bool", "as_text", "as_native"):
        environment.filters[name] = lambda value: value
    rendered = environment.from_string(text).render(env_var=env_var)
    return yaml.safe_load(rendered)["cdp"]["outputs"]["spark"]


def session():
    """A Spark session on the dbt profile's metastore and warehouse folder; with SPARK_REMOTE
    set (Spark Connect, sc://host:port), a session on that cluster instead."""
    from pyspark.sql import SparkSession

    if os.environ.get("SPARK_REMOTE"):
        return SparkSession.builder.getOrCreate()

    builder = SparkSession.builder.enableHiveSupport()
    for key, value in (_profile_target().get("server_side_parameters") or {}).items():
        if key == "spark.master":
            builder = builder.master(str(value))
        else:
            builder = builder.config(key, value)
    return builder.getOrCreate()


def _table_exists(spark, schema: str, table: str) -> bool:
    return spark.catalog.tableExists(f"{schema}.{table}")


def score_matches(spark, rescore_all: bool = False) -> dict:
    """Score `intermediate.int_match_candidates` into `intermediate.identity_match_pairs`, its
    state beside it, with the settings dbt rendered into the manifest (or the defaults). Every
    table is written under a new name first, then swapped in: a failed run leaves the last one."""
    config = matcher_config(_manifest_path())
    schema = config["schema"]
    state = {
        table: spark.table(f"{schema}.{table}").toPandas()
        for table in (MODEL_TABLE, SCORED_TABLE, PAIRS_TABLE)
        if _table_exists(spark, schema, table)
    }
    tables = score_frames(
        spark.table(f"{schema}.int_match_candidates").toPandas(),
        state,
        schema,
        floor=config["floor"],
        rescore_all=rescore_all or config["rescore_all"],
        overrides=config["overrides"],
    )
    for table, frame in tables.items():
        staged = spark.createDataFrame(frame) if len(frame) else _empty(spark, frame)
        staged.write.mode("overwrite").saveAsTable(f"{schema}.{table}__new")
    for table in tables:
        spark.sql(f"drop table if exists {schema}.{table}")
        spark.sql(f"alter table {schema}.{table}__new rename to {schema}.{table}")
    return run_summary(tables)


def _empty(spark, frame):
    """An empty frame keeps its columns (Spark cannot infer types from no rows)."""
    from pyspark.sql.types import StringType, StructField, StructType

    return spark.createDataFrame([], StructType([StructField(c, StringType()) for c in frame]))


def _manifest_path() -> Path:
    """The spark target's manifest, where `make manifest` or dbt wrote it."""
    target_path = os.environ.get("DBT_TARGET_PATH", "target/spark")
    return PROJECT_ROOT / target_path / "manifest.json"


def main() -> int:
    spark = session()
    try:
        run = score_matches(spark)
    finally:
        spark.stop()
    print(
        f"matcher ({run['mode']}): {run['scored_records']:,} of {run['records']:,} records "
        f"scored, {run['pairs']:,} pairs kept"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
