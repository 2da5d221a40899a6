"""Resources, configured in one place from environment variables."""

import os
from contextlib import contextmanager
from pathlib import Path

from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource

from cdp.core.config import landing_path, warehouse_path
from cdp.core.warehouse import connect_warehouse
from orchestration.project import PROJECT_ROOT, dbt_project


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


def build_resources() -> dict:
    # dbt reads CDP_WAREHOUSE itself; pin it so loader and dbt always share one file.
    os.environ["CDP_WAREHOUSE"] = warehouse_path()
    # dbt may open the file first (seeds run before any load): DuckDB creates files, not folders.
    Path(warehouse_path()).parent.mkdir(parents=True, exist_ok=True)
    return {
        "warehouse": WarehouseResource(path=warehouse_path(), landing_dir=landing_path()),
        "dbt": DbtCliResource(project_dir=dbt_project, profiles_dir=str(PROJECT_ROOT)),
    }
