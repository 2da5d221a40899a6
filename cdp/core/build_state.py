"""Which dbt nodes a build can leave alone: those whose code and inputs are what they were at
their last successful build.

A node's signature hashes its own definition (file checksum, config, test arguments), the
project's macros, the build command and project settings, and its parents' signatures. A
source's is a fingerprint of its rows (count and an order-free sum of row hashes), so a change
by any writer (our loader, an EL tool, an erasure) is seen. After a build each node that
succeeded is recorded with its signature, in the warehouse itself, so the state travels with
the data and a new or restored warehouse builds in full. A node is unchanged when its recorded
signature equals today's and its relation still exists.

A node whose result changes with the wall clock alone says when in its config: `meta:
{cdp_rebuild: {after_times_in: due_at, every_hours: 1}}` builds it again (and its descendants)
once a time in its table's column `due_at` has passed since its last build (an SLA breach), or
once that build is an hour old (a score that ages); `meta: {cdp_rebuild: every_run}` on every
run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdp.core.sql import quote, utc_now
from cdp.core.warehouse import Warehouse

STATE_SCHEMA = "cdp_build"
STATE_TABLE = f'{quote(STATE_SCHEMA)}."node_builds"'
BUILT = ("success", "pass", "warn")  # run_results statuses whose node reflects its inputs
EVERY_RUN = "every_run"
FULL_BUILD_TAG = "cdp/full_build"  # a Dagster run tag: build everything, ignore the state
EXPLICIT_MAX = 150  # changed nodes named one by one up to this many


def full_build_asked(tags: Mapping[str, str]) -> bool:
    """Whether a Dagster run's tags ask to build everything, ignoring the state."""
    return tags.get(FULL_BUILD_TAG, "").lower() == "true"


@dataclass
class BuildPlan:
    """Per node (models, seeds, snapshots, tests) its signature now; those to leave alone, with
    the status each had when it was last built."""

    signatures: dict[str, str]
    unchanged: dict[str, str] = field(default_factory=dict)
    reason: str = ""  # why everything is built, when it is
    # recorded as the nodes' build time: not after a model read the clock
    started_at: dt.datetime = field(default_factory=utc_now)
    problems: list[str] = field(default_factory=list)  # rules that could not be read


def step_scope(manifest: Mapping[str, Any], step_ids: set[str], step_sources: set[str]) -> set[str]:
    """A build step's nodes with the tests it runs: those on its nodes whose other parents are
    built before it (its ancestors), and those on its sources alone."""
    nodes = manifest["nodes"]
    before, todo = set(), list(step_ids)
    while todo:
        for parent in nodes.get(todo.pop(), {}).get("depends_on", {}).get("nodes", []):
            if parent not in before:
                before.add(parent)
                todo.append(parent)
    scope = set(step_ids)
    for unique_id, node in nodes.items():
        if not _is_test(node):
            continue
        parents = node.get("depends_on", {}).get("nodes", [])
        models = [p for p in parents if p in nodes]
        if models:
            if set(models) & step_ids and all(p in step_ids or p in before for p in models):
                scope.add(unique_id)
        elif parents and set(parents) <= step_sources:
            scope.add(unique_id)
    return scope


def selection_args(
    manifest: Mapping[str, Any], plan: BuildPlan, scope: set[str], whole: list[str] | None
) -> list[str] | None:
    """dbt selection arguments that build the changed nodes of `scope` and run its changed
    tests; None when nothing changed. `whole` selects all of scope (None: name everything).
    dbt matches every selector against every node (about 15 ms each here), so a few changes
    are named, and many are `whole` less the unchanged models and source tests."""
    nodes = manifest["nodes"]
    changed = sorted(u for u in scope if u not in plan.unchanged)
    if not changed:
        return None
    if whole is not None and len(changed) == len(scope):
        return [*whole, "--indirect-selection", "buildable"]
    if whole is None or len(changed) <= EXPLICIT_MAX:
        named = " ".join(_selector(nodes[u]) for u in changed)
        return ["--select", named, "--indirect-selection", "empty"]
    left = [
        _selector(nodes[u])
        for u in sorted(scope & plan.unchanged.keys())
        if not _is_test(nodes[u])
        or not any(p in nodes for p in nodes[u].get("depends_on", {}).get("nodes", []))
    ]
    return [*whole, "--exclude", " ".join(left), "--indirect-selection", "buildable"]


def project_settings(project_dir: str | Path, command: list[str]) -> list[str]:
    """What, besides the nodes, decides a build's result: the command and the project file."""
    return [*command, Path(project_dir, "dbt_project.yml").read_text(encoding="utf-8")]


# Every model, seed and snapshot; tests come with them (indirect selection), source tests with
# their sources.
WHOLE_PROJECT = [
    "--select",
    "resource_type:model resource_type:seed resource_type:snapshot source:*",
]


def whole_project_selection(manifest: Mapping[str, Any], plan: BuildPlan) -> list[str] | None:
    """`selection_args` for a build of the whole project in one dbt command."""
    built = {u for u, n in manifest["nodes"].items() if n["resource_type"] != "test"}
    scope = step_scope(manifest, built, set(manifest.get("sources", {})))
    return selection_args(manifest, plan, scope, WHOLE_PROJECT)


def build_whole_project(
    connect: Callable[[], AbstractContextManager[Warehouse]],
    manifest: Mapping[str, Any],
    settings: Any,
    run_dbt: Callable[[list[str]], Mapping[str, Any] | None],
) -> int | None:
    """One dbt command over what changed in the whole project since its last recorded build,
    recorded after it: `run_dbt(selection)` runs it and returns its run_results. The number of
    nodes recorded; None when nothing changed (dbt did not run)."""
    with connect() as con:
        plan = plan_build(con, manifest, settings)
    selection = whole_project_selection(manifest, plan)
    if selection is None:
        return None
    run_results = run_dbt(selection)
    with connect() as con:
        return record_build(con, plan, run_results)


def _selector(node: Mapping[str, Any]) -> str:
    """Tests by name (unique in a project), the rest by fqn (a name can recur in packages)."""
    return node["name"] if _is_test(node) else "fqn:" + ".".join(node["fqn"])


def _is_test(node: Mapping[str, Any]) -> bool:
    return node["resource_type"] == "test"


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _definition(manifest: Mapping[str, Any], node: Mapping[str, Any]) -> str:
    """A node's own definition, without its parents: what editing it changes."""
    columns = {
        name: [c.get("data_type"), c.get("constraints")]
        for name, c in (node.get("columns") or {}).items()
    }
    return _digest(
        node["resource_type"],
        node.get("checksum"),
        node.get("raw_code"),
        node.get("config"),
        node.get("test_metadata"),
        columns,
        node.get("relation_name"),
    )


def _rebuild_rule(node: Mapping[str, Any]) -> Any:
    meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
    return meta.get("cdp_rebuild")


def rebuilt_every_run(node: Mapping[str, Any]) -> bool:
    return _rebuild_rule(node) == EVERY_RUN


def on_the_clock(node: Mapping[str, Any]) -> bool:
    """Whether a node is built again as time passes, without new inputs (meta cdp_rebuild)."""
    return rebuilt_every_run(node) or isinstance(_rebuild_rule(node), Mapping)


def clock_passed(
    con: Warehouse,
    manifest: Mapping[str, Any],
    built_at: Mapping[str, dt.datetime],
    existing: set[tuple[str, str]],
    now: dt.datetime,
    problems: list[str] | None = None,
) -> set[str]:
    """The nodes with a `cdp_rebuild` rule whose time came between their last build and `now`:
    a time in their table's `after_times_in` column passed, or `every_hours` went by. A rule
    that cannot be read (no such column, hours not a number) counts as passed, and says why in
    `problems`: built too often, never left stale."""
    passed = set()
    for unique_id, node in manifest["nodes"].items():
        rule, since = _rebuild_rule(node), built_at.get(unique_id)
        schema, alias = node.get("schema") or "", node.get("alias") or ""
        if not isinstance(rule, Mapping) or since is None:
            continue
        hours, column = rule.get("every_hours"), rule.get("after_times_in")
        try:
            if hours is not None and now - since >= dt.timedelta(hours=float(hours)):
                passed.add(unique_id)
            elif column and (schema.lower(), alias.lower()) in existing:
                found = con.execute(
                    f"select count(*) from {quote(schema)}.{quote(alias)} "
                    f"where {quote(column)} > ? and {quote(column)} <= ?",
                    [since, now],
                ).fetchall()[0][0]
                if found:
                    passed.add(unique_id)
        except Exception as exc:  # any unreadable rule: built, and why said
            passed.add(unique_id)
            if problems is not None:
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                problems.append(
                    f"{unique_id}: meta cdp_rebuild {dict(rule)} could not be read "
                    f"({type(exc).__name__}: {first_line}); built on every run until fixed"
                )
    return passed


def descendants(manifest: Mapping[str, Any], start: Iterable[str]) -> set[str]:
    """`start` and every node below it (dbt's child map)."""
    found, todo = set(start), list(start)
    while todo:
        for child in manifest.get("child_map", {}).get(todo.pop(), []):
            if child not in found and child in manifest["nodes"]:
                found.add(child)
                todo.append(child)
    return found


def source_fingerprints(
    con: Warehouse, manifest: Mapping[str, Any], existing: set[tuple[str, str]]
) -> dict[str, str]:
    """Per dbt source, the fingerprint of its rows ("missing" for a table not loaded yet)."""
    found = {}
    for unique_id, source in manifest.get("sources", {}).items():
        schema, name = source["schema"], source.get("identifier") or source["name"]
        if (schema.lower(), name.lower()) not in existing:
            found[unique_id] = "missing"
            continue
        relation = f"{quote(schema)}.{quote(name)}"
        found[unique_id] = con.execute(con.content_fingerprint(relation)).fetchall()[0][0]
    return found


def existing_relations(con: Warehouse) -> set[tuple[str, str]]:
    rows = con.execute("select table_schema, table_name from information_schema.tables")
    return {(schema.lower(), name.lower()) for schema, name in rows.fetchall()}


def signatures(
    manifest: Mapping[str, Any], fingerprints: Mapping[str, str], settings: Any
) -> dict[str, str]:
    """Every node's signature: its definition, `settings` (the command, the project file) and
    its parents' signatures; a source's is its fingerprint. Nodes rebuilt every run get a
    signature of this run alone, which their descendants inherit."""
    nodes, run = manifest["nodes"], uuid.uuid4().hex
    metadata = manifest.get("metadata", {})
    # Every macro at once: dispatched implementations are not always in a node's depends_on,
    # and editing a macro is rare beside loading data.
    macros = sorted((n, m.get("macro_sql", "")) for n, m in manifest.get("macros", {}).items())
    base = _digest(settings, metadata.get("adapter_type"), metadata.get("dbt_version"), macros)
    found: dict[str, str] = {}

    def signature(unique_id: str) -> str:
        if unique_id in found:
            return found[unique_id]
        if unique_id not in nodes:  # a source, or something dbt does not build
            found[unique_id] = _digest(unique_id, fingerprints.get(unique_id, "not fingerprinted"))
            return found[unique_id]
        found[unique_id] = ""  # a cycle is dbt's to report
        node = nodes[unique_id]
        parents = [signature(p) for p in sorted(node.get("depends_on", {}).get("nodes", []))]
        nonce = run if rebuilt_every_run(node) else ""
        found[unique_id] = _digest(base, unique_id, _definition(manifest, node), parents, nonce)
        return found[unique_id]

    for unique_id, node in nodes.items():
        # a disabled test stays in the nodes (on a model disabled for this target) but never runs
        enabled = (node.get("config") or {}).get("enabled", True)
        if node["resource_type"] in ("model", "seed", "snapshot", "test") and enabled:
            signature(unique_id)
    return {u: s for u, s in found.items() if u in nodes}


def ensure_state_table(con: Warehouse) -> None:
    with con.serialized("cdp_build_state"):
        con.execute(f"create schema if not exists {quote(STATE_SCHEMA)}")
        con.execute(
            f"create table if not exists {STATE_TABLE} (unique_id varchar primary key, "
            "signature varchar not null, status varchar not null, built_at timestamp not null)"
        )


def plan_build(
    con: Warehouse, manifest: Mapping[str, Any], settings: Any, full: bool = False
) -> BuildPlan:
    """What a build of `manifest`'s nodes can leave alone; everything when `full`."""
    started_at = utc_now()
    existing = existing_relations(con)
    fingerprints = source_fingerprints(con, manifest, existing)
    recorded, built_at = {}, {}
    if (STATE_SCHEMA, "node_builds") in existing:
        for unique_id, signature, status, built in con.execute(
            f"select unique_id, signature, status, built_at from {STATE_TABLE}"
        ).fetchall():
            recorded[unique_id], built_at[unique_id] = (signature, status), built
    problems: list[str] = []
    # Built again with their descendants, but recorded with the signature of their inputs: a
    # signature of this run alone would make the next run build them once more.
    due = descendants(
        manifest, clock_passed(con, manifest, built_at, existing, started_at, problems)
    )
    current = signatures(manifest, fingerprints, settings)
    if full:
        return BuildPlan(
            current, reason="a full build was asked for", started_at=started_at, problems=problems
        )
    if (STATE_SCHEMA, "node_builds") not in existing:
        return BuildPlan(
            current, reason="no earlier build is recorded in this warehouse", started_at=started_at
        )
    unchanged = {}
    for unique_id, signature in current.items():
        node = manifest["nodes"][unique_id]
        if recorded.get(unique_id, ("", ""))[0] != signature or unique_id in due:
            continue
        materialized = (node.get("config") or {}).get("materialized")
        if not _is_test(node) and materialized != "ephemeral":
            relation = ((node.get("schema") or "").lower(), (node.get("alias") or "").lower())
            if relation not in existing:
                continue
        unchanged[unique_id] = recorded[unique_id][1]
    # a table built again (it was dropped) is tested again, though its inputs are the same
    for unique_id in [u for u in unchanged if _is_test(manifest["nodes"][u])]:
        parents = manifest["nodes"][unique_id].get("depends_on", {}).get("nodes", [])
        if any(p in manifest["nodes"] and p not in unchanged for p in parents):
            del unchanged[unique_id]
    return BuildPlan(current, unchanged, started_at=started_at, problems=problems)


def record_build(con: Warehouse, plan: BuildPlan, run_results: Mapping[str, Any] | None) -> int:
    """Record the nodes a build finished well (from its run_results.json) with the signatures
    they were planned with; returns how many."""
    rows = [
        (
            result["unique_id"],
            plan.signatures[result["unique_id"]],
            result["status"],
            plan.started_at,
        )
        for result in (run_results or {}).get("results", [])
        if result.get("status") in BUILT and result.get("unique_id") in plan.signatures
    ]
    _record(con, rows)
    return len(rows)


def _record(con: Warehouse, rows: list[tuple]) -> None:
    """(unique_id, signature, status, built_at) rows, replacing those of the same ids."""
    if not rows:
        return
    ensure_state_table(con)
    con.execute("begin transaction")
    try:
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            con.execute(
                f"delete from {STATE_TABLE} where unique_id in ({marks})", [r[0] for r in chunk]
            )
        con.executemany(f"insert into {STATE_TABLE} values (?, ?, ?, ?)", rows)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def inputs_signature(con: Warehouse, relations: Iterable[str], code: Any) -> str:
    """A Python step's signature: `code` (its version, its module's text) and a fingerprint of
    each relation (schema.table) it reads."""
    prints = []
    for relation in relations:
        schema, name = relation.split(".")
        sql = con.content_fingerprint(f"{quote(schema)}.{quote(name)}")
        prints.append(con.execute(sql).fetchall()[0][0])
    return _digest(code, prints)


def last_step(con: Warehouse, step: str) -> tuple[str, str] | None:
    """(signature, status) of the Python step or check `step` at its last run, if recorded."""
    if (STATE_SCHEMA, "node_builds") not in existing_relations(con):
        return None
    found = con.execute(
        f"select signature, status from {STATE_TABLE} where unique_id = ?", [f"step.{step}"]
    ).fetchall()
    return tuple(found[0]) if found else None


def record_step(con: Warehouse, step: str, signature: str, status: str = "success") -> None:
    _record(con, [(f"step.{step}", signature, status, utc_now())])
