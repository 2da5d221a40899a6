"""Personal data on a non-production target: the same project built on the `dev` target (a copy
of the session's raw data) holds no tagged value in clear, and the list of tagged columns in
docs/ is current."""

import json
import os
import shutil

import duckdb
import pytest

from cdp.privacy.access import pii_columns, pii_columns_markdown
from orchestration.project import PROJECT_ROOT, prepared_dbt_project
from tests.conftest import dbt_build


@pytest.fixture(scope="module")
def manifest(full_run):
    return json.loads(prepared_dbt_project().manifest_path.read_text())


@pytest.fixture(scope="module")
def dev_warehouse(full_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("dev") / "dev.duckdb"
    shutil.copy(os.environ["CDP_WAREHOUSE"], path)
    dbt_build("--target", "dev", env={"CDP_DEV_WAREHOUSE": str(path)})
    return path


def test_docs_list_every_tagged_column(manifest):
    committed = (PROJECT_ROOT / "docs" / "pii_columns.md").read_text(encoding="utf-8")
    assert committed == pii_columns_markdown(manifest), "run: cdp privacy pii-columns --markdown"
    relations = {c["relation"] for c in pii_columns(manifest)}
    assert {"marts.customers", "staging.stg_crm__contacts", "staging.stg_shop__customers"} <= (
        relations
    )


def test_dev_target_holds_no_tagged_value_in_clear(manifest, dev_warehouse):
    prod = duckdb.connect(os.environ["CDP_WAREHOUSE"], read_only=True)
    dev = duckdb.connect(str(dev_warehouse), read_only=True)
    checked = 0
    try:
        for column in pii_columns(manifest):
            relation, name = column["relation"], f'"{column["column"]}"'
            kind = dev.execute(
                "select data_type from information_schema.columns where table_schema || '.' "
                "|| table_name = ? and column_name = ?",
                [relation, column["column"]],
            ).fetchall()[0][0]
            values = dev.execute(
                f"select distinct cast({name} as varchar) from {relation} where {name} is not null"
            ).fetchall()
            if kind != "VARCHAR":
                assert values == [], relation + name  # dates and numbers are dropped
                continue
            if relation.startswith("staging.stg_declared__"):
                # the demo declares no source in YAML (tests/test_declared_sources.py has one)
                continue
            assert values, f"{relation}.{name} is empty on dev"
            assert all(v[0].startswith(("pii_", "+999")) for v in values), relation + name
            clear = prod.execute(
                f"select count(*) from {relation} where {name} in (select unnest($values))",
                {"values": [v[0] for v in values]},
            ).fetchall()[0][0]
            assert clear == 0, relation + name
            checked += 1
    finally:
        prod.close()
        dev.close()
    assert checked >= 40


def test_masking_keeps_joins_and_formats(dev_warehouse):
    con = duckdb.connect(str(dev_warehouse), read_only=True)
    try:
        emails = con.execute(
            "select email from marts.customers where email is not null limit 100"
        ).fetchall()
        joined = con.execute(
            """select count(*) from marts.customers c join marts.customer_identifiers i
            on i.profile_id = c.profile_id and i.identifier_kind = 'email'
            and i.identifier_value = c.email"""
        ).fetchall()[0][0]
    finally:
        con.close()
    assert emails and all(e[0].endswith("@masked.invalid") for e in emails)
    assert joined > 1000  # equal values hash equally: the golden email is among the identifiers
