"""A source system read from a PostgreSQL database (the real server), declared in YAML, loaded
incrementally by a cursor column into the DuckDB warehouse."""

import pytest

from cdp.core.warehouse import connect_warehouse
from cdp.ingest.load import load_table
from cdp.ingest.sources import read_source
from tests.conftest import PG, pg_answers, pg_connect

pytestmark = pytest.mark.skipif(not pg_answers(), reason="no PostgreSQL server at 127.0.0.1:5432")

DECLARATION = """
system: clubdb
default_country: DE
tables:
  - name: members
    entity: person
    format: postgres
    connection: CLUBDB_DSN
    query: select * from cdp_source_test.members
    cursor: changed_at
    columns:
      - {name: member_no, type: id, role: record_id}
      - {name: first_name, role: given_name}
      - {name: last_name, role: family_name}
      - {name: born, type: date, role: birth_date}
      - {name: changed_at, type: timestamp, role: updated_at}
"""


@pytest.fixture
def members_db():
    con = pg_connect()
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("drop schema if exists cdp_source_test cascade")
        cur.execute("create schema cdp_source_test")
        cur.execute(
            "create table cdp_source_test.members (member_no text, first_name text, "
            "last_name text, born text, changed_at timestamp, nickname text)"
        )
        cur.execute(
            "insert into cdp_source_test.members values "
            "('M-1', 'Anna', 'Müller', '1980-02-01', '2026-01-01 10:00', null), "
            "('M-2', 'Jürgen', 'Weiß', '1975-13-40', '2026-01-02 10:00', 'Jogi'), "
            "('M-10', 'Eva', 'Klein', null, '2026-01-03 10:00', null)"
        )
    yield con
    with con.cursor() as cur:
        cur.execute("drop schema if exists cdp_source_test cascade")
    con.close()


def test_a_postgres_table_loads_incrementally_by_its_cursor(tmp_path, members_db, monkeypatch):
    path = tmp_path / "clubdb.yml"
    path.write_text(DECLARATION, encoding="utf-8")
    [table] = read_source(path).as_tables()
    dsn = " ".join(f"{k}={v}" for k, v in PG.items())
    monkeypatch.setenv("CLUBDB_DSN", dsn)
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
    first = load_table(con, table, tmp_path)
    assert (first.rows_read, first.rows_new, first.values_invalid) == (3, 3, 1)
    assert first.unexpected_columns == ["nickname"]
    rows = con.execute(
        "select member_no, born, _invalid_values is not null, _extra_values "
        "from raw.clubdb__members order by member_no"
    ).fetchall()
    assert rows == [
        ("M-1", "1980-02-01", False, None),
        ("M-10", None, False, None),
        ("M-2", None, True, '{"nickname":"Jogi"}'),
    ]
    with members_db.cursor() as cur:
        cur.execute(
            "insert into cdp_source_test.members values "
            "('M-3', 'Paul', 'Groß', '1990-05-05', '2026-01-04 10:00', null)"
        )
        cur.execute(
            "update cdp_source_test.members set last_name = 'Müller-Lang', "
            "changed_at = '2026-01-05 10:00' where member_no = 'M-1'"
        )
    second = load_table(con, table, tmp_path)
    assert (second.rows_read, second.rows_new) == (2, 2)  # only what changed since
    third = load_table(con, table, tmp_path)
    assert (third.rows_read, third.files_loaded) == (0, [])
    cursors = con.execute(
        "select cursor_value from raw._load_files where table_key = 'clubdb__members' "
        "order by loaded_at"
    ).fetchall()
    assert cursors == [("2026-01-03T10:00:00",), ("2026-01-05T10:00:00",)]


def test_an_unreachable_database_costs_only_its_refresh(tmp_path, monkeypatch):
    path = tmp_path / "clubdb.yml"
    path.write_text(DECLARATION, encoding="utf-8")
    [table] = read_source(path).as_tables()
    monkeypatch.setenv("CLUBDB_DSN", "host=127.0.0.1 port=1 user=nobody dbname=none")
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
    result = load_table(con, table, tmp_path)
    assert result.rows_new == 0
    assert any("cannot connect" in line for line in result.problems())
    monkeypatch.delenv("CLUBDB_DSN")
    assert any("set CLUBDB_DSN" in line for line in load_table(con, table, tmp_path).problems())
