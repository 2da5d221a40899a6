"""The dbt project as Dagster sees it. The manifest is (re)built when missing, under
`dagster dev`, or when CDP_REFRESH_MANIFEST=1 (set by `cdp run` so edits are picked up) and what
dbt parses changed since; that happens when the definitions load, never on import."""

import functools
import hashlib
import importlib.metadata
import os
import re
import sys
from pathlib import Path

import yaml
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
    missing = not project.manifest_path.exists()
    if missing or os.environ.get("CDP_REFRESH_MANIFEST") == "1":
        inputs = project.project_dir / project.target_path / PARSED_INPUTS
        digest = parse_inputs_digest()
        parsed = inputs.read_text(encoding="utf-8").strip() if inputs.is_file() else None
        if missing or parsed != digest:
            preparer.prepare(project)
            inputs.write_text(digest, encoding="utf-8")
    # dagster-dbt gives each dbt invocation a target folder of its own under DBT_TARGET_PATH and
    # copies the partial-parse file found there into it; pointed at the prepared project, every
    # invocation skips the full parse (7-10 s saved per dbt step of a demo run).
    os.environ.setdefault("DBT_TARGET_PATH", str(project.project_dir / project.target_path))
    return project


# Beside the manifest: the digest of what the parse that wrote it read. `cdp run` parses again
# only when it differs (dbt's own partial parse still took 3.3 s of every demo run).
PARSED_INPUTS = "parsed_inputs.sha256"
_ENV_VAR_CALL = re.compile(r"""env_var\(\s*['"]([^'"]+)['"]""")
_ROOT_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")
# dbt's defaults where dbt_project.yml names no paths
_PATH_KEYS = {
    "model-paths": ["models"],
    "macro-paths": ["macros"],
    "seed-paths": ["seeds"],
    "snapshot-paths": ["snapshots"],
    "test-paths": ["tests"],
    "analysis-paths": ["analyses"],
    "docs-paths": [],
}


def parse_inputs_digest(root: Path = PROJECT_ROOT) -> str:
    """SHA-256 over what `dbt parse` reads: the project's files (root files, every file under its
    configured paths and installed packages), the environment variables they name with
    env_var(), dbt's DBT_* settings and the installed dbt versions."""
    config = yaml.safe_load((root / "dbt_project.yml").read_text(encoding="utf-8")) or {}
    folders = {"dbt_packages"}
    for key, default in _PATH_KEYS.items():
        folders.update(config.get(key) or default)
    files = [root / name for name in _ROOT_FILES if (root / name).is_file()]
    for folder in sorted(folders):
        files += sorted(f for f in (root / folder).rglob("*") if f.is_file())
    digest, names = hashlib.sha256(), {"CDP_TARGET"}
    for path in files:
        content = path.read_bytes()
        digest.update(f"{path.relative_to(root)}\0{len(content)}\0".encode() + content)
        if path.suffix in (".yml", ".yaml", ".sql", ".py", ".md"):
            names |= set(_ENV_VAR_CALL.findall(content.decode("utf-8", "replace")))
    names |= {name for name in os.environ if name.startswith("DBT_")}
    for name in sorted(names - {"DBT_TARGET_PATH"}):
        digest.update(f"{name}={os.environ.get(name)}\0".encode())
    for package in ("dbt-core", "dbt-duckdb", "dbt-postgres", "dagster-dbt"):
        try:
            digest.update(f"{package}={importlib.metadata.version(package)}\0".encode())
        except importlib.metadata.PackageNotFoundError:
            continue
    return digest.hexdigest()
