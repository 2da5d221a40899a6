"""The dbt project as Dagster sees it. The manifest is (re)built when missing, under
`dagster dev`, or when CDP_REFRESH_MANIFEST=1 (set by `cdp run` so edits are picked up); that
happens when the definitions load, never on import."""

import functools
import os
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from cdp.core.config import PROJECT_ROOT
from cdp.core.warehouse import target as warehouse_target

# The dbt installed beside this Python, venv active or not.
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")


def dbt_project() -> DbtProject:
    """One manifest per warehouse target: the models enabled differ (the Splink matcher runs on
    DuckDB only), and a run on one target must not pick up another's manifest."""
    return DbtProject(
        project_dir=PROJECT_ROOT,
        profiles_dir=PROJECT_ROOT,
        target=warehouse_target(),
        target_path=Path("target") / warehouse_target(),
    )


def prepared_dbt_project() -> DbtProject:
    """The project of the current target with its manifest ready (parsed once per process)."""
    return _prepared(warehouse_target())


@functools.cache
def _prepared(target: str) -> DbtProject:
    # dagster-dbt parses with the `dbt` on PATH: make it this Python's.
    folder = str(Path(DBT_EXECUTABLE).parent)
    if folder not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
    project = dbt_project()
    project.prepare_if_dev()
    if os.environ.get("CDP_REFRESH_MANIFEST") == "1" or not project.manifest_path.exists():
        project.preparer.prepare(project)
    # dagster-dbt gives each dbt invocation a target folder of its own under DBT_TARGET_PATH and
    # copies the partial-parse file found there into it; pointed at the prepared project, every
    # invocation skips the full parse (7-10 s saved per dbt step of a demo run, four per run).
    os.environ.setdefault("DBT_TARGET_PATH", str(project.target_path))
    return project
