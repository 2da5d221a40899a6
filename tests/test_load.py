"""Raw loads into a real DuckDB file: idempotent, incremental, loss-free, loud on drift."""

import csv
import shutil
from pathlib import Path

import duckdb
import pytest

from cdp.load import SchemaDriftError, connect, load_table
from cdp.sources import TABLES, table
from tests.conftest import generate


@pytest.fixture
def small_landing(tmp_path) -> Path:
    generate(tmp_path / "landing", people=300, seed=11)
    return tmp_path / "landing"


def _load_all(con, landing):
    return {t.key: load_table(con, t, landing) for t in TABLES}


def _count(con, sql: str) -> int:
    return con.execute(sql).fetchall()[0][0]


def test_loading_the_same_files_twice_adds_nothing(tmp_path, small_landing):
    con = connect(tmp_path / "wh.duckdb")
    first = _load_all(con, small_landing)
    rows = {k: _count(con, f"select count(*) from raw.{k}") for k in first}
    second = _load_all(con, small_landing)
    assert all(r.rows_new > 0 for r in first.values())
    assert all(r.rows_new == 0 and r.files_skipped and not r.files_loaded for r in second.values())
    assert rows == {k: _count(con, f"select count(*) from raw.{k}") for k in first}


def test_same_content_under_another_name_adds_nothing(tmp_path, small_landing):
    con = connect(tmp_path / "wh.duckdb")
    load_table(con, table("crm__contacts"), small_landing)
    folder = small_landing / "crm" / "contacts"
    original = next(folder.iterdir())
    shutil.copy(original, folder / "contacts_reexport.csv")
    result = load_table(con, table("crm__contacts"), small_landing)
    assert result.files_skipped == ["contacts_initial.csv", "contacts_reexport.csv"]
    assert result.files_loaded == []
    assert result.rows_new == 0


def test_new_files_load_incrementally_and_overlapping_rows_are_not_repeated(tmp_path):
    landing = tmp_path / "landing"
    generate(landing, people=200, seed=5)
    con = connect(tmp_path / "wh.duckdb")
    before = _load_all(con, landing)
    generate(landing, people=50, seed=5, batch="2026-11-02", first_person=201)
    after = _load_all(con, landing)
    for key, result in after.items():
        total = _count(con, f"select count(*) from raw.{key}")
        assert total == before[key].rows_new + result.rows_new
        if key != "crm__accounts":
            assert result.files_loaded == [
                f"{key.split('__')[1]}_2026-11-02.{table(key).extension}"
            ]
            assert result.rows_new > 0, key
    # The CRM re-exports the same accounts each time: nothing is inserted twice, whether the
    # file is byte-identical (skipped) or not (rows already loaded are left out).
    accounts = after["crm__accounts"]
    assert accounts.rows_new == 0
    assert set(accounts.files_skipped) == {"accounts_initial.csv", "accounts_2026-11-02.csv"} or (
        accounts.rows_already_loaded >= 8
    )
    assert _count(con, "select count(distinct _batch_id) from raw.web__events") == 2


def test_nothing_is_lost_every_line_is_loaded_or_quarantined(tmp_path, small_landing):
    con = connect(tmp_path / "wh.duckdb")
    results = _load_all(con, small_landing)
    for t in TABLES:
        path = next((small_landing / t.source / t.name).iterdir())
        if t.format == "csv":
            lines = len(path.read_text(encoding="utf-8").splitlines()) - 1
        elif t.format == "jsonl":
            lines = len(path.read_text(encoding="utf-8").splitlines())
        else:  # json array: one element per line between the brackets
            lines = len(path.read_text(encoding="utf-8").splitlines()) - 2
        loaded = _count(con, f"select count(*) from raw.{t.key}")
        quarantined = _count(
            con,
            f"select count(*) from raw.quarantine where table_name = '{t.name}' "
            f"and source = '{t.source}'",
        )
        assert results[t.key].rows_read == lines, t.key
        assert loaded + quarantined == lines, t.key


def test_malformed_rows_are_quarantined_with_file_line_and_reason(tmp_path, small_landing):
    folder = small_landing / "crm" / "contacts"
    path = next(folder.iterdir())
    with path.open("a", encoding="utf-8") as fh:
        fh.write("C-BROKEN,only,three\n")
        fh.write(
            ",A-1,Herr,No,Id,,,,,,,DE,,,,New,Website,2025-01-01 10:00:00,2025-01-01 10:00:00\n"
        )
        fh.write("C-BADDATE,,Frau,Bad,Date,,,,,,,DE,1990-02-31,,,New,Website,x,y\n")
    con = connect(tmp_path / "wh.duckdb")
    load_table(con, table("crm__contacts"), small_landing)
    rows = con.execute(
        "select line_number, raw_text, reason, file_name from raw.quarantine "
        "where raw_text like 'C-BROKEN%' or raw_text like ',A-1%' or raw_text like 'C-BADDATE%' "
        "order by line_number"
    ).fetchall()
    total_lines = len(path.read_text(encoding="utf-8").splitlines())
    assert [r[0] for r in rows] == [total_lines - 2, total_lines - 1, total_lines]
    assert rows[0][2] == "expected 19 fields, found 3"
    assert rows[1][2] == "column 'contact_id': required id is empty"
    assert rows[2][2] == "column 'birth_date': '1990-02-31' is not a valid date_iso"
    assert all(r[3] == str(path) for r in rows)
    assert _count(con, "select count(*) from raw.crm__contacts where contact_id like 'C-B%'") == 0


def test_renamed_csv_column_fails_with_a_clear_message_and_writes_nothing(tmp_path):
    landing = tmp_path / "landing"
    folder = landing / "crm" / "contacts"
    folder.mkdir(parents=True)
    columns = table("crm__contacts").column_names
    renamed = ["e_mail" if c == "email" else c for c in columns]
    with (folder / "contacts_v2.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(renamed)
        writer.writerow([f"v{i}" for i in range(len(renamed))])
    con = connect(tmp_path / "wh.duckdb")
    with pytest.raises(SchemaDriftError) as error:
        load_table(con, table("crm__contacts"), landing)
    message = str(error.value)
    assert "contacts_v2.csv" in message
    assert "missing column(s) email" in message
    assert "unexpected column(s) e_mail" in message
    assert _count(con, "select count(*) from raw.crm__contacts") == 0
    assert _count(con, "select count(*) from raw._load_files") == 0


def test_json_field_missing_from_every_row_is_schema_drift(tmp_path):
    landing = tmp_path / "landing"
    folder = landing / "shop" / "orders"
    folder.mkdir(parents=True)
    (folder / "orders.jsonl").write_text(
        '{"order_id": "O-1", "customer_id": 1, "email": "a@b.de", "status": "paid", '
        '"currency": "EUR", "amount": "1.00", "ordered_at": "2025-01-01T00:00:00Z"}\n',
        encoding="utf-8",
    )
    con = connect(tmp_path / "wh.duckdb")
    with pytest.raises(SchemaDriftError, match=r"missing column.*total_amount"):
        load_table(con, table("shop__orders"), landing)


def test_a_broken_json_array_costs_only_the_broken_element(tmp_path):
    landing = tmp_path / "landing"
    folder = landing / "reviews" / "reviews"
    folder.mkdir(parents=True)
    good = (
        '{"review_id": "R-%d", "product_sku": "S", "rating": 5, "title": "t", '
        '"reviewer_name": "A B.", "reviewer_email": null, "verified_purchase": true, '
        '"submitted_at": "2025-01-01T00:00:00Z"}'
    )
    (folder / "reviews.json").write_text(
        "[\n" + good % 1 + ',\n{"review_id": "R-2", "rat' + ",\n" + good % 3 + "\n]\n",
        encoding="utf-8",
    )
    con = connect(tmp_path / "wh.duckdb")
    result = load_table(con, table("reviews__reviews"), landing)
    assert (result.rows_new, result.rows_quarantined) == (2, 1)
    assert con.execute("select line_number from raw.quarantine").fetchall() == [(3,)]


def test_load_metadata_columns_are_filled(tmp_path, small_landing):
    con = connect(tmp_path / "wh.duckdb")
    load_table(con, table("shop__customers"), small_landing)
    nulls = con.execute(
        "select count(*) filter (where _loaded_at is null or _source_file is null "
        "or _batch_id is null or _row_hash is null or _source_line is null) "
        "from raw.shop__customers"
    ).fetchall()[0][0]
    assert nulls == 0
    loaded = con.execute("select rows_new from raw._load_files").fetchall()
    assert loaded == [(_count(con, "select count(*) from raw.shop__customers"),)]


def test_warehouse_file_is_a_plain_duckdb_database(tmp_path, small_landing):
    con = connect(tmp_path / "wh.duckdb")
    load_table(con, table("email__subscribers"), small_landing)
    con.close()
    again = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    assert _count(again, "select count(*) from raw.email__subscribers") > 0
