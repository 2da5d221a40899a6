"""Where things are: the project root and the paths set by environment variables. Relative paths
are relative to the project root, as dbt (run from there) sees them."""

import functools
import getpass
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def from_root(value: str) -> str:
    path = Path(value)
    return str(path if path.is_absolute() else PROJECT_ROOT / path)


def warehouse_path() -> str:
    return from_root(os.environ.get("CDP_WAREHOUSE", "warehouse/cdp.duckdb"))


def landing_path() -> str:
    return from_root(os.environ.get("CDP_LANDING", "data/demo"))


def who() -> str:
    """Who is deciding, for decisions kept with who, when and why: CDP_USER or the login name."""
    return os.environ.get("CDP_USER") or getpass.getuser()


def project_var(name: str, default=None):
    """A var as dbt_project.yml sets it, for Python that must agree with the models (a run's
    `--vars` are not seen here)."""
    return _project_vars().get(name, default)


@functools.cache
def _project_vars() -> dict:
    """Read once per process: servers ask on every request."""
    import yaml

    project = yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text(encoding="utf-8"))
    return project.get("vars") or {}


# What production runs exclude from `dbt build` (the dbt assets, the erasure rebuild, the
# benchmark): unit tests check model logic on fixtures, not data; `make test` runs them (dbt's
# advice; they were an eighth of a run after new data).
PRODUCTION_DBT_EXCLUDE = ["--exclude-resource-type", "unit_test"]


def dbt_log_file_args() -> list[str]:
    """dbt's own log file in runs that record dbt's events elsewhere (Dagster keeps the
    structured stdout; the benchmark times): none, unless DBT_LOG_LEVEL_FILE asks for one. Its
    debug JSON, 11 MB for the demo's build, took a tenth of a dbt build's time."""
    return [] if os.environ.get("DBT_LOG_LEVEL_FILE") else ["--log-level-file", "none"]


# Names of syncs and audiences: they end up in SQL literals and file names.
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


def valid_name(value: str) -> str:
    import re

    if not re.match(NAME_PATTERN, value):
        raise ValueError("must be lower case letters, digits and _ (starting with a letter)")
    return value


def load_yaml_model(path: Path, model, error: type[Exception], what: str):
    """A YAML mapping validated into a pydantic model (with its `path`); every problem is raised
    as `error` naming the file, the line and the field."""
    import yaml
    from pydantic import ValidationError

    text = Path(path).read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        # one line: YAML's message spans several, with a caret drawing
        where = getattr(exc, "problem_mark", None)
        line = f":{where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise error(f"{path}{line}: not valid YAML: {problem}") from exc
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping of {what} settings")
    try:
        return model.model_validate({**raw, "path": path})
    except ValidationError as exc:
        problems = "; ".join(
            f"{path}:{_line_of(root, e['loc'])}: "
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise error(problems) from exc


def _line_of(node, location: tuple) -> int:
    """The line of the YAML node at a pydantic error location (its nearest existing parent)."""
    import yaml

    line = node.start_mark.line + 1
    for step in location:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            child = node.value[step] if step < len(node.value) else None
        else:
            child = None
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def load_named_yaml_models(folder: Path, load_one, error: type[Exception]) -> dict:
    """Every *.yml of a folder through `load_one`, by name; a name used twice is an error."""
    loaded: dict = {}
    for path in sorted(folder.glob("*.yml")):
        item = load_one(path)
        if item.name in loaded:
            raise error(f"{path}: name: {item.name!r} is already used by {loaded[item.name].path}")
        loaded[item.name] = item
    return loaded
