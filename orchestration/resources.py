"""Resources, configured in one place from environment variables."""

import os
from contextlib import contextmanager
from pathlib import Path

from dagster import ConfigurableResource, EnvVar
from dagster_dbt import DbtProject

from cdp.core.config import PROJECT_ROOT, landing_path, warehouse_path
from cdp.core.warehouse import connect_warehouse
from cdp.core.warehouse import target as warehouse_target
from orchestration.project import DBT_EXECUTABLE, DbtCli

WAREHOUSE_ENV, LANDING_ENV = "CDP_WAREHOUSE", "CDP_LANDING"


class WarehouseResource(ConfigurableResource):
    """The warehouse of CDP_TARGET (the DuckDB file at `path`, or PostgreSQL from CDP_PG_*) and
    the landing folder that raw loads read from."""

    path: str
    landing_dir: str

    @contextmanager
    def connection(self, read_only: bool = False):
        con = connect_warehouse(read_only=read_only, path=self.path)
        try:
            yield con
        finally:
            con.close()


def warehouse_kind() -> str:
    """The kind tag of assets that write the warehouse: the target's engine."""
    return warehouse_target()


def export_locations() -> None:
    """The defaults, written back: dbt reads CDP_WAREHOUSE itself, so loader and dbt always
    share one file, and the resources read both from the environment. Before the manifest is
    parsed: dbt keeps its parse only while the profile it renders stays the same."""
    os.environ[WAREHOUSE_ENV] = warehouse_path()
    os.environ[LANDING_ENV] = landing_path()
    # dbt may open the file first (seeds run before any load): DuckDB creates files, not folders.
    Path(warehouse_path()).parent.mkdir(parents=True, exist_ok=True)


def build_resources(project: DbtProject) -> dict:
    """The resources, read from the environment `export_locations` wrote."""
    return {
        "warehouse": WarehouseResource(path=EnvVar(WAREHOUSE_ENV), landing_dir=EnvVar(LANDING_ENV)),
        "dbt": DbtCli(
            project_dir=project, profiles_dir=str(PROJECT_ROOT), dbt_executable=DBT_EXECUTABLE
        ),
    }
