"""The dbt project as Dagster sees it. The manifest is (re)built when missing, under
`dagster dev`, or when CDP_REFRESH_MANIFEST=1 (set by `cdp run` so edits are picked up); that
happens when the definitions load, never on import."""

import functools
import importlib.metadata
import os
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.dbt_project import DagsterDbtProjectPreparer
from packaging import version

from cdp.core.config import PROJECT_ROOT
from cdp.core.warehouse import target as warehouse_target

# The dbt installed beside this Python, venv active or not.
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")


class DbtCli(DbtCliResource):
    """dbt as this project runs it: the dbt beside this Python, started once per command.
    Before every dbt command, dagster-dbt starts `dbt --version` (2 s) and opens a dbt adapter in
    the calling process (2-3 s: it loads every macro of the project), the latter only to fetch
    row counts and column metadata afterwards. These assets fetch neither, and the version is
    the installed dbt-core's."""

    @property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):
        return None


class InPlaceManifestPreparer(DagsterDbtProjectPreparer):
    """dagster-dbt's preparation (dbt parse), with two differences. It parses through `DbtCli`.
    And it keeps the seeds' entries in the partial-parse file: dagster-dbt voids them so that a
    manifest parsed elsewhere (CI, an image) re-reads the seeds' paths, but this project parses
    where it runs (`_prepared`, `make manifest`), and voided entries made every dbt step of a
    run parse the seven seeds again (1.2 s a step)."""

    def _prepare_manifest(self, project: DbtProject) -> None:
        DbtCli(project_dir=project, dbt_executable=DBT_EXECUTABLE).cli(
            self._prepare_project_cli_args, target_path=project.target_path
        ).wait()


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
    # dagster-dbt installs packages (`dbt deps`) with the `dbt` on PATH: make it this Python's.
    folder = str(Path(DBT_EXECUTABLE).parent)
    if folder not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
    project, preparer = dbt_project(), InPlaceManifestPreparer()
    preparer.prepare_if_dev(project)
    if os.environ.get("CDP_REFRESH_MANIFEST") == "1" or not project.manifest_path.exists():
        preparer.prepare(project)
    # dagster-dbt gives each dbt invocation a target folder of its own under DBT_TARGET_PATH and
    # copies the partial-parse file found there into it; pointed at the prepared project, every
    # invocation skips the full parse (7-10 s saved per dbt step of a demo run).
    os.environ.setdefault("DBT_TARGET_PATH", str(project.target_path))
    return project
