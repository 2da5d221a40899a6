"""The dbt project keeps its promises: every model documented and keyed, sources in sync with
what the loader declares."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cdp.core.config import PROJECT_ROOT
from cdp.ingest.declared import DECLARED_RELATIONS
from cdp.ingest.sources import tables
from orchestration.project import parse_inputs_digest, prepared_dbt_project
from tests.conftest import dbt_build, dbt_command


@pytest.fixture(scope="module")
def manifest(full_run):
    return json.loads(prepared_dbt_project().manifest_path.read_text())


def test_source_yml_columns_match_the_loader_declaration(manifest):
    sources = {
        (n["source_name"], n["name"]): n
        for n in manifest["sources"].values()
        if n["package_name"] == "cdp" and n["schema"] == "raw"
    }
    # Besides the loaded tables, raw holds what the loader, the identity commands and the lead
    # workflow's commands publish.
    published = {("declared", name) for name in DECLARED_RELATIONS} | {
        ("identity", "decisions"),
        ("lead_workflow", "decisions"),
    }
    assert set(sources) == {(t.source, t.name) for t in tables()} | published
    for t in tables():
        node = sources[(t.source, t.name)]
        assert node["identifier"] == t.key
        assert node["schema"] == "raw"
        declared = [c for c in node["columns"] if not c.startswith("_")]
        assert declared == t.column_names, t.key
        assert node["description"]
        assert node["config"]["freshness"]["error_after"]["count"]


def test_every_model_and_column_is_documented_and_every_model_keyed(manifest, warehouse):
    models = [
        n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["package_name"] == "cdp"
    ]
    assert models
    tests = [n for n in manifest["nodes"].values() if n["resource_type"] == "test"]
    for model in models:
        assert model["description"], model["name"]
        actual = [
            r[0]
            for r in warehouse.execute(
                "select column_name from information_schema.columns"
                " where table_schema = ? and table_name = ? order by ordinal_position",
                [model["schema"], model["name"]],
            ).fetchall()
        ]
        documented = {c: v["description"] for c, v in model["columns"].items()}
        assert set(actual) == set(documented), model["name"]
        assert all(documented.values()), model["name"]
        # Keyed: the first column unique and not null (primary_key tests both), or a tested
        # unique column combination.
        key = actual[0]
        attached = [
            t
            for t in tests
            if t.get("attached_node") == model["unique_id"] and t.get("test_metadata")
        ]
        on_key = {t["test_metadata"]["name"] for t in attached if t.get("column_name") == key}
        on_key |= {
            "not_null"
            for t in attached
            if key in t["test_metadata"]["kwargs"].get("column_names", [])
        }
        combined = any(t["test_metadata"]["name"] == "unique_combination" for t in attached)
        keyed = "primary_key" in on_key or {"unique", "not_null"} <= on_key
        assert keyed or combined, model["name"]


def _warehouse_copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the built warehouse, and the environment that points dbt at it."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(os.environ["CDP_WAREHOUSE"], path)
    return path, {"CDP_WAREHOUSE": str(path)}


def _fails_with_two_rows(selected: list[str], env: dict[str, str]) -> None:
    failed = dbt_command(*selected, env=env, command="test")
    assert failed.returncode == 1
    assert "Got 2 results, configured to fail if != 0" in failed.stdout, failed.stdout[-2000:]


def test_the_primary_key_test_fails_for_a_repeated_and_for_a_missing_key(manifest, tmp_path):
    """The project's own key test on a copy of the built warehouse: it passes as built, and
    one account id written twice and another emptied make two failing rows."""
    path, env = _warehouse_copy(tmp_path)
    key_test = ["--select", "primary_key_stg_crm__accounts_account_id"]
    dbt_build(*key_test, env=env, command="test")  # passes as built
    with duckdb.connect(str(path)) as con:
        accounts = "staging.stg_crm__accounts"
        ids = f"select min(account_id), max(account_id) from {accounts}"
        first, last = con.execute(ids).fetchone()
        assert first != last
        twice = f"insert into {accounts} select * from {accounts} where account_id = ?"
        con.execute(twice, [first])
        con.execute(f"update {accounts} set account_id = null where account_id = ?", [last])
    _fails_with_two_rows(key_test, env)


def test_not_null_columns_fails_with_a_row_per_column_holding_nulls(manifest, tmp_path):
    """The project's test of a model's never-null columns on a copy of the built warehouse:
    it passes as built; one empty value in one listed column and two in another make two
    failing rows, each naming its column and counting its nulls."""
    [test] = [
        n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test"
        and n.get("test_metadata", {}).get("name") == "not_null_columns"
        and n["attached_node"] == "model.cdp.customers"
    ]
    first, second = test["test_metadata"]["kwargs"]["column_names"][:2]
    path, env = _warehouse_copy(tmp_path)
    selected = ["--select", test["name"], "--store-failures"]
    dbt_build(*selected, env=env, command="test")  # passes as built
    with duckdb.connect(str(path)) as con:
        ids = [
            r[0] for r in con.execute("select profile_id from marts.customers limit 3").fetchall()
        ]
        empty = "update marts.customers set {} = null where profile_id in ({})"
        con.execute(empty.format(first, "?"), ids[:1])
        con.execute(empty.format(second, "?, ?"), ids[1:])
    _fails_with_two_rows(selected, env)
    with duckdb.connect(str(path), read_only=True) as con:
        [schema] = con.execute(
            "select table_schema from information_schema.tables where table_name = ?",
            [test["alias"]],  # its name, shortened
        ).fetchone()
        rows = con.execute(
            f"select column_name, null_rows from {schema}.{test['alias']} order by 2"
        ).fetchall()
    assert rows == [(first, 1), (second, 2)]


def test_personal_data_columns_are_tagged(manifest):
    pii = {
        (n["name"], c)
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model"
        for c, v in n["columns"].items()
        if v.get("meta", {}).get("pii")
    }
    for model in ("stg_crm__contacts", "stg_shop__customers", "stg_loyalty__cards"):
        for column in ("first_name", "last_name", "email", "phone"):
            assert (model, column) in pii


def test_unit_tests_pass_though_production_runs_skip_them(manifest, tmp_path):
    """Dagster runs exclude dbt unit tests (PRODUCTION_DBT_EXCLUDE): the suite runs each one."""
    unit_tests = set(manifest["unit_tests"])
    assert len(unit_tests) >= 10
    dbt_build(
        "--select",
        "test_type:unit",
        "--target-path",
        str(tmp_path),
        env={},
        command="test",
    )
    results = json.loads((tmp_path / "run_results.json").read_text())["results"]
    assert {r["unique_id"] for r in results} == unit_tests
    assert {r["status"] for r in results} == {"pass"}


def test_python_reads_only_marts_and_models_declared_public(manifest):
    """The public data interface: code outside dbt reads marts, or a model whose yml declares
    `access: public`; renaming anything else inside dbt breaks no Python."""
    readable = {
        f"{n['schema']}.{n['name']}"
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and (n["schema"] == "marts" or n["access"] == "public")
    }
    # tables Python writes itself and dbt reads as sources
    written_by_python = {f"{n['schema']}.{n['identifier']}" for n in manifest["sources"].values()}
    read = {}
    for package in ("cdp", "reverse_etl", "orchestration"):
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for relation in re.findall(r"\b(?:staging|intermediate|marts)\.[a-z_]+\b", text):
                read.setdefault(relation, path.relative_to(PROJECT_ROOT))
    assert read, "no reads found: the pattern no longer matches the code"
    hidden = {r: str(p) for r, p in read.items() if r not in readable | written_by_python}
    assert not hidden, f"Python reads models that are neither marts nor public: {hidden}"


def test_the_manifest_is_parsed_again_only_when_what_dbt_reads_changed(tmp_path, monkeypatch):
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: p\nversion: '1'\nprofile: p\n")
    model = root / "models" / "m.sql"
    model.write_text('select \'{{ env_var("CDP_TEST_REGION", "eu") }}\' as region')
    monkeypatch.setenv("CDP_TEST_REGION", "eu")
    first = parse_inputs_digest(root)
    assert parse_inputs_digest(root) == first
    # unrelated environment and files outside dbt's paths change nothing
    monkeypatch.setenv("CDP_UNRELATED", "1")
    (root / "notes.txt").write_text("not read by dbt")
    assert parse_inputs_digest(root) == first
    monkeypatch.setenv("CDP_TEST_REGION", "us")  # a variable the project reads with env_var()
    assert parse_inputs_digest(root) != first
    monkeypatch.setenv("CDP_TEST_REGION", "eu")
    (root / "macros").mkdir()  # dbt's default macro path, though dbt_project.yml names none
    (root / "macros" / "x.sql").write_text("{% macro x() %}1{% endmacro %}")
    with_macro = parse_inputs_digest(root)
    assert with_macro != first
    model.write_text(model.read_text() + " -- edited")
    assert parse_inputs_digest(root) != with_macro


def test_prepare_parses_once_and_then_finds_the_manifest_unchanged():
    """`cdp prepare` (run by `make demo` beside the data generation, by a deployment when it
    builds) leaves the manifest a run finds ready: a second call parses nothing."""
    prepare = [str(Path(sys.executable).parent / "cdp"), "prepare"]
    first = subprocess.run(prepare, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert first.returncode == 0, first.stderr
    manifest = prepared_dbt_project().manifest_path
    assert re.search(rf"dbt manifest (parsed|unchanged): {re.escape(str(manifest))}", first.stderr)
    again = subprocess.run(prepare, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert again.returncode == 0 and "dbt manifest unchanged" in again.stderr, again.stderr
