"""The dbt project as Dagster sees it. The manifest is (re)built when missing, under
`dagster dev`, or when CDP_REFRESH_MANIFEST=1 (set by `cdp run` so edits are picked up)."""

import os
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from cdp.core.config import PROJECT_ROOT
from cdp.core.warehouse import target as warehouse_target

# dagster-dbt runs `dbt` from PATH: use the one installed beside this Python, venv active or not.
_bin = str(Path(sys.executable).parent)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")

# One manifest per warehouse target: the models enabled differ (the Splink matcher runs on DuckDB
# only), and a run on one target must not pick up another's manifest.
dbt_project = DbtProject(
    project_dir=PROJECT_ROOT,
    profiles_dir=PROJECT_ROOT,
    target=warehouse_target(),
    target_path=Path("target") / warehouse_target(),
)
dbt_project.prepare_if_dev()
if os.environ.get("CDP_REFRESH_MANIFEST") == "1" or not dbt_project.manifest_path.exists():
    dbt_project.preparer.prepare(dbt_project)
