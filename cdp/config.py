"""Where things are: the project root and the paths set by environment variables. Relative paths
are relative to the project root, as dbt (run from there) sees them."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _from_root(value: str) -> str:
    path = Path(value)
    return str(path if path.is_absolute() else PROJECT_ROOT / path)


def warehouse_path() -> str:
    return _from_root(os.environ.get("CDP_WAREHOUSE", "warehouse/cdp.duckdb"))


def landing_path() -> str:
    return _from_root(os.environ.get("CDP_LANDING", "data/demo"))
