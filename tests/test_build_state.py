"""Builds of what changed: node signatures over the real manifest, row fingerprints on real
DuckDB and PostgreSQL tables, and real Dagster runs after the session's full run, first with
nothing new and then with rows an outside writer added to one source."""

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance

from cdp.core.build_state import (
    FULL_BUILD_TAG,
    STATE_SCHEMA,
    clock_passed,
    descendants,
    on_the_clock,
    plan_build,
    record_build,
    signatures,
)
from cdp.core.warehouse import CDP_SCHEMAS, DuckDBWarehouse, PostgresWarehouse
from tests.conftest import DBT_TARGET, MANIFEST, pg_database


@pytest.fixture(scope="module")
def manifest(defs):  # the code location's load prepares the manifest
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def _changed(before: dict, after: dict) -> set[str]:
    return {u for u in before if before[u] != after[u]}


def test_editing_a_model_changes_it_and_exactly_what_lies_below_it(manifest):
    prints = {u: "1:1" for u in manifest["sources"]}
    before = signatures(manifest, prints, ["build"])
    edited = json.loads(json.dumps(manifest))
    edited["nodes"]["model.cdp.stg_support__tickets"]["checksum"]["checksum"] = "edited"
    after = signatures(edited, prints, ["build"])
    assert _changed(before, after) == descendants(manifest, {"model.cdp.stg_support__tickets"})
    assert "model.cdp.stg_shop__customers" not in _changed(before, after)


def test_new_rows_in_a_source_change_what_reads_it_and_nothing_else(manifest):
    prints = {u: "1:1" for u in manifest["sources"]}
    before = signatures(manifest, prints, ["build"])
    source = "source.cdp.support.tickets"
    after = signatures(manifest, {**prints, source: "2:7"}, ["build"])
    below = descendants(manifest, {source}) - {source}
    assert below and _changed(before, after) == below
    # the project file and the command are part of every signature
    assert _changed(before, signatures(manifest, prints, ["build", "--full-refresh"])) == set(
        before
    )


def test_models_on_the_wall_clock_change_with_all_below_them_once_their_time_came(manifest):
    clocked = {u for u, n in manifest["nodes"].items() if on_the_clock(n)}
    # SLA breaches are judged against now; the aged lead score decays
    assert {"model.cdp.lead_tasks", "model.cdp.lead_assignments"} <= clocked
    prints = {u: "1:1" for u in manifest["sources"]}
    first, second = (signatures(manifest, prints, ["build"]) for _ in range(2))
    assert _changed(first, second) == set()
    # what a due lead_tasks takes with it
    assert {
        "model.cdp.lead_tasks",
        "model.cdp.lead_notifications",
        "model.cdp.lead_status_history",
    } <= descendants(manifest, {"model.cdp.lead_tasks"})


def test_a_model_is_due_once_a_time_in_its_table_passed_or_its_build_is_too_old(tmp_path):
    """Real tables: a task due before now but after the last build makes its model due; one
    due later, or before that build, does not; an hourly rule falls due after an hour."""

    def node(name: str, rule: dict) -> dict:
        return {**_node("model", name, []), "config": {"meta": {"cdp_rebuild": rule}}}

    manifest = {
        "nodes": {
            "model.p.tasks": node("tasks", {"after_times_in": "due at"}),
            "model.p.scores": node("scores", {"every_hours": 1}),
        }
    }
    built = dt.datetime(2026, 12, 1, 9, 0)
    con = DuckDBWarehouse(duckdb.connect(str(tmp_path / "w.duckdb")))
    try:
        con.execute('create table tasks ("due at" timestamp)')
        con.execute("insert into tasks values ('2026-12-01 08:00'), ('2026-12-01 13:00')")
        con.execute("create table scores (score integer)")
        existing = {("main", "tasks"), ("main", "scores")}
        ids = ("model.p.tasks", "model.p.scores")
        at = {u: built for u in ids}

        def due(now: dt.datetime) -> set[str]:
            return clock_passed(con, manifest, at, existing, now)

        assert due(built + dt.timedelta(minutes=30)) == set()
        assert due(built + dt.timedelta(hours=1)) == {"model.p.scores"}
        assert due(dt.datetime(2026, 12, 1, 13, 0)) == set(ids)
        assert clock_passed(con, manifest, {}, existing, dt.datetime(2026, 12, 2)) == set()
        # a rule naming a column the table lacks: built, and the reason said, never an error
        manifest["nodes"]["model.p.tasks"] = node("tasks", {"after_times_in": "due_on"})
        problems: list[str] = []
        assert clock_passed(con, manifest, at, existing, built, problems) == {"model.p.tasks"}
        assert len(problems) == 1 and "model.p.tasks" in problems[0] and "due_on" in problems[0]
    finally:
        con.close()


def _fingerprints(con, relation: str) -> list[str]:
    """The fingerprint after each of: nothing, an insert, an update of one value, a delete,
    and the original rows written again in another order."""
    seen = []

    def look():
        seen.append(con.execute(con.content_fingerprint(relation)).fetchall()[0][0])

    con.execute(f"create table {relation} (id integer, name varchar, seen_at timestamp)")
    con.execute(
        f"insert into {relation} values (1, 'Anna', '2026-01-01 10:00'), "
        "(2, 'Ben', '2026-01-02 11:00'), (3, null, null)"
    )
    look()
    con.execute(f"insert into {relation} values (4, 'Cem', '2026-01-03 12:00')")
    look()
    con.execute(f"update {relation} set name = 'Cen' where id = 4")
    look()
    con.execute(f"delete from {relation} where id = 4")
    look()
    con.execute(f"create table {relation}_copy as select * from {relation} order by id desc")
    con.execute(f"delete from {relation}")
    con.execute(f"insert into {relation} select * from {relation}_copy")
    look()
    return seen


def _assert_fingerprints_see_every_change(seen: list[str]) -> None:
    original, inserted, updated, deleted, reordered = seen
    assert len({original, inserted, updated}) == 3
    assert deleted == original == reordered  # same rows, same fingerprint


def test_duckdb_fingerprints_see_inserts_updates_and_deletes(tmp_path):
    con = DuckDBWarehouse(duckdb.connect(str(tmp_path / "w.duckdb")))
    try:
        _assert_fingerprints_see_every_change(_fingerprints(con, "people"))
    finally:
        con.close()


def test_postgres_fingerprints_see_inserts_updates_and_deletes():
    with pg_database("cdp_build_state") as settings, PostgresWarehouse(**settings) as con:
        _assert_fingerprints_see_every_change(_fingerprints(con, "people"))


def _node(kind: str, name: str, parents: list[str]) -> dict:
    """A manifest node as dbt writes it, with the fields signatures and plans read."""
    return {
        "resource_type": kind,
        "checksum": {"checksum": name},
        "config": {"materialized": "seed" if kind == "seed" else "table"},
        "schema": "main",
        "alias": name,
        "fqn": ["p", name],
        "name": name,
        "depends_on": {"nodes": parents},
    }


def _manifest(nodes: dict, child_map: dict | None = None) -> dict:
    """A manifest of `nodes` over one source, raw_people."""
    return {
        "nodes": nodes,
        "sources": {"source.p.raw.people": {"schema": "main", "identifier": "raw_people"}},
        "child_map": child_map or {},
        "macros": {},
        "metadata": {"adapter_type": "duckdb"},
    }


def test_a_recorded_node_is_unchanged_until_its_table_is_dropped_or_a_full_build(tmp_path):
    """The state lives in the warehouse: a model recorded as built is left alone while its
    relation exists; dropped, or on a full build, it is built again."""
    nodes = {
        "seed.p.codes": _node("seed", "codes", parents=[]),
        "model.p.people": _node("model", "people", ["source.p.raw.people", "seed.p.codes"]),
        "test.p.people_has_codes": _node("test", "people_has_codes", ["model.p.people"]),
    }
    manifest = _manifest(nodes)
    con = DuckDBWarehouse(duckdb.connect(str(tmp_path / "w.duckdb")))
    try:
        con.execute("create table raw_people as select 1 as id")
        con.execute("create table codes as select 'x' as code")
        con.execute("create table people as select 1 as id")
        first = plan_build(con, manifest, ["build"])
        assert first.unchanged == {} and "no earlier build" in first.reason
        results = [{"unique_id": u, "status": "success"} for u in nodes]
        assert record_build(con, first, {"results": results}) == 3
        assert set(plan_build(con, manifest, ["build"]).unchanged) == set(nodes)
        assert plan_build(con, manifest, ["build"], full=True).unchanged == {}
        con.execute("insert into raw_people values (2)")
        assert set(plan_build(con, manifest, ["build"]).unchanged) == {"seed.p.codes"}
        con.execute("delete from raw_people where id = 2")
        con.execute("drop table codes")
        assert set(plan_build(con, manifest, ["build"]).unchanged) == {
            "model.p.people",
            "test.p.people_has_codes",
        }
        con.execute("create table codes as select 'x' as code")
        con.execute("drop table people")  # built again, so tested again
        assert set(plan_build(con, manifest, ["build"]).unchanged) == {"seed.p.codes"}
    finally:
        con.close()
    assert STATE_SCHEMA in CDP_SCHEMAS  # a PostgreSQL reset drops it with the data


def test_a_model_due_by_the_clock_is_built_once_with_what_lies_below_it(tmp_path):
    """A due time passes after a build: the next plan builds the model and its descendants, and
    the plan after that build leaves them alone again (not built once more)."""
    import time

    tasks = _node("model", "tasks", ["source.p.raw.people"])
    tasks["config"]["meta"] = {"cdp_rebuild": {"after_times_in": "due_at"}}
    nodes = {
        "model.p.tasks": tasks,
        "model.p.alerts": _node("model", "alerts", ["model.p.tasks"]),
        "model.p.other": _node("model", "other", ["source.p.raw.people"]),
    }
    manifest = _manifest(
        nodes,
        child_map={
            "source.p.raw.people": ["model.p.tasks", "model.p.other"],
            "model.p.tasks": ["model.p.alerts"],
        },
    )
    con = DuckDBWarehouse(duckdb.connect(str(tmp_path / "w.duckdb")))
    try:
        con.execute("create table raw_people as select 1 as id")
        con.execute("create table tasks (due_at timestamp)")
        con.execute("create table alerts as select 1 as id")
        con.execute("create table other as select 1 as id")

        def build(plan, built):
            record_build(
                con, plan, {"results": [{"unique_id": u, "status": "success"} for u in built]}
            )

        first = plan_build(con, manifest, ["build"])
        build(first, nodes)
        con.execute(
            "insert into tasks values (?)", [first.started_at + dt.timedelta(milliseconds=1)]
        )
        time.sleep(0.01)
        second = plan_build(con, manifest, ["build"])
        assert set(second.unchanged) == {"model.p.other"}
        build(second, ["model.p.tasks", "model.p.alerts"])
        assert set(plan_build(con, manifest, ["build"]).unchanged) == set(nodes)
    finally:
        con.close()


def test_the_nightly_full_graph_builds_everything(defs):
    schedule = defs.resolve_schedule_def("daily_full_graph")
    assert schedule.tags.get(FULL_BUILD_TAG) == "true"


@pytest.fixture(scope="module")
def rerun(full_run, defs, tmp_path_factory):
    """Runs of the full graph on the session warehouse after the full run; the warehouse is
    put back as the full run left it afterwards."""
    path = Path(os.environ["CDP_WAREHOUSE"])
    backup = tmp_path_factory.mktemp("before_reruns") / path.name
    shutil.copy(path, backup)

    def run():
        with DagsterInstance.ephemeral() as instance:
            return defs.resolve_job_def("full_graph").execute_in_process(
                instance=instance, raise_on_error=False
            )

    try:
        yield run
    finally:
        shutil.copy(backup, path)


def _materialized(result) -> dict[str, dict]:
    """Per dbt or ml asset the run reported, its metadata."""
    return {
        e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
        if e.step_key.startswith(("cdp_dbt_models", "ml__"))
    }


def _rebuilt(result) -> set[str]:
    return {
        name for name, meta in _materialized(result).items() if meta.get("rebuilt") is not False
    }


def _check_outcomes(result) -> dict[tuple, tuple]:
    return {
        (e.asset_key.to_user_string(), e.check_name): (e.passed, e.severity.value)
        for e in result.get_asset_check_evaluations()
    }


def test_a_run_with_nothing_new_rebuilds_nothing(full_run, rerun):
    """Minutes after the full run: no SLA (4 hours and more) ran out, no score aged an hour."""
    result = rerun()
    assert result.success
    assert _rebuilt(result) == set()
    reported = _materialized(result)
    assert reported["stg_shop__customers"]["rebuilt"] is False
    assert reported["customer_predictions"]["rebuilt"] is False  # not retrained
    assert set(reported) == set(_materialized(full_run))  # every asset reported
    # every check has a result, as the full run's: rerun where its inputs changed, else kept
    assert _check_outcomes(result) == _check_outcomes(full_run)
    kept = [
        e
        for e in result.get_asset_check_evaluations()
        if e.metadata.get("rerun") is not None and e.metadata["rerun"].value is False
    ]
    assert len(kept) > 100


def test_rows_an_outside_writer_adds_to_one_source_rebuild_what_reads_it(rerun):
    """An EL tool, not our loader, adds a support ticket: the run sees it in the raw table's
    fingerprint, rebuilds the ticket's path to the marts and leaves the shop's staging."""
    with duckdb.connect(os.environ["CDP_WAREHOUSE"]) as con:
        con.execute(
            """insert into raw.support__tickets
               select * replace ('T-OUTSIDE-1' as ticket_id, md5('outside') as _row_hash)
               from raw.support__tickets limit 1"""
        )
    result = rerun()
    assert result.success
    rebuilt = _rebuilt(result)
    assert {"stg_support__tickets", "int_profile_events", "customer_events"} <= rebuilt
    assert not {"stg_shop__customers", "stg_crm__contacts", "stg_web__events"} & rebuilt
    with duckdb.connect(os.environ["CDP_WAREHOUSE"], read_only=True) as con:
        found = con.execute(
            "select count(*) from marts.customer_events where event_key = 'support:T-OUTSIDE-1'"
        ).fetchall()
    assert found == [(1,)]
    assert AssetKey(["marts", "customer_events"]) in {
        e.asset_key for e in result.get_asset_materialization_events()
    }
    # the raw tables' Great Expectations checks: run again on the changed table only
    rerun_by_table = {
        (e.asset_key.to_user_string(), e.check_name): "rerun" not in e.metadata
        for e in result.get_asset_check_evaluations()
        if e.check_name.startswith("ge_")
    }
    assert rerun_by_table[("support/tickets", "ge_in_set_priority")] is True
    assert rerun_by_table[("crm/contacts", "ge_match_regex_email")] is False
    # dbt wrote its results but no log file of its own (Dagster has its events)
    steps = list(DBT_TARGET.glob(f"cdp_dbt_models*-{result.run_id[:7]}-*"))
    assert steps
    for step in steps:
        assert (step / "run_results.json").exists() and not list(step.glob("dbt.log*"))
