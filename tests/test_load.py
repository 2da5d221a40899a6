"""Raw loads into a real DuckDB file: idempotent, incremental, loss-free, loud on drift."""

import csv
import shutil
from pathlib import Path

import duckdb
import pytest

from cdp.core.warehouse import connect_warehouse
from cdp.ingest.load import load_table
from cdp.ingest.sources import table, tables
from tests.conftest import generate


@pytest.fixture
def small_landing(tmp_path) -> Path:
    generate(tmp_path / "landing", people=300, seed=11)
    return tmp_path / "landing"


def _load_all(con, landing):
    return {t.key: load_table(con, t, landing) for t in tables()}


def _count(con, sql: str) -> int:
    return con.execute(sql).fetchall()[0][0]


def test_loading_the_same_files_twice_adds_nothing(tmp_path, small_landing):
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
    first = _load_all(con, small_landing)
    rows = {k: _count(con, f"select count(*) from raw.{k}") for k in first}
    second = _load_all(con, small_landing)
    assert all(r.rows_new > 0 for r in first.values())
    assert all(r.rows_new == 0 and r.files_skipped and not r.files_loaded for r in second.values())
    assert rows == {k: _count(con, f"select count(*) from raw.{k}") for k in first}


def test_same_content_under_another_name_adds_nothing(tmp_path, small_landing):
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
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
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
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
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
    results = _load_all(con, small_landing)
    for t in tables():
        path = next((small_landing / t.source / t.name).iterdir())
        if t.format == "csv":
            lines = len(path.read_bytes().splitlines()) - 1
        elif t.format == "jsonl":
            lines = len(path.read_bytes().splitlines())
        else:  # json array: one element per line between the brackets
            lines = len(path.read_bytes().splitlines()) - 2
        loaded = _count(con, f"select count(*) from raw.{t.key}")
        quarantined = _count(
            con,
            f"select count(*) from raw.quarantine where table_name = '{t.name}' "
            f"and source = '{t.source}'",
        )
        assert results[t.key].rows_read == lines, t.key
        assert loaded + quarantined == lines, t.key


def test_unreadable_rows_are_quarantined_and_bad_values_kept_beside_a_null(tmp_path, small_landing):
    folder = small_landing / "crm" / "contacts"
    path = next(folder.iterdir())
    with path.open("a", encoding="utf-8") as fh:
        fh.write("C-BROKEN,only,three\n")
        fh.write(
            ",A-1,Herr,No,Id,,,,,,,DE,,,,New,Website,2025-01-01 10:00:00,2025-01-01 10:00:00\n"
        )
        fh.write("C-BADDATE,,Frau,Bad,Date,,,,,,,DE,1990-02-31,,,New,Website,x,y\n")
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
    result = load_table(con, table("crm__contacts"), small_landing)
    rows = con.execute(
        "select line_number, raw_text, reason, file_name from raw.quarantine "
        "where raw_text like 'C-BROKEN%' or raw_text like ',A-1%' or raw_text like 'C-BADDATE%' "
        "order by line_number"
    ).fetchall()
    total_lines = len(path.read_text(encoding="utf-8").splitlines())
    assert [r[0] for r in rows] == [total_lines - 2, total_lines - 1]
    assert rows[0][2] == "expected 19 fields, found 3"
    assert rows[1][2] == "column 'contact_id': required id is empty"
    assert all(r[3] == str(path) for r in rows)
    # A value that does not parse costs only itself: null, with the exported text and reason.
    kept = con.execute(
        "select birth_date, created_at, _invalid_values::json->'birth_date'->>'value', "
        "_invalid_values::json->'created_at'->>'reason' "
        "from raw.crm__contacts where contact_id = 'C-BADDATE'"
    ).fetchall()
    assert kept == [(None, None, "1990-02-31", "'x' is not a valid timestamp")]
    assert result.values_invalid >= 3


def _write_csv(path: Path, header: list[str], rows: list[list[str]], encoding="utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def test_a_renamed_optional_column_loads_as_null_and_keeps_the_value(tmp_path):
    landing = tmp_path / "landing"
    columns = table("crm__contacts").column_names
    renamed = ["e_mail" if c == "email" else c for c in columns]
    values = ["v" + str(i) for i in range(len(renamed))]
    values[renamed.index("e_mail")] = "a@b.de"
    _write_csv(landing / "crm" / "contacts" / "contacts_v2.csv", renamed, [values])
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
    result = load_table(con, table("crm__contacts"), landing)
    assert (result.rows_new, result.missing_columns, result.unexpected_columns) == (
        1,
        ["email"],
        ["e_mail"],
    )
    assert con.execute("select email, _extra_values from raw.crm__contacts").fetchall() == [
        (None, '{"e_mail":"a@b.de"}')
    ]
    assert any("e_mail" in line for line in result.problems())


def test_bad_files_are_rejected_once_recorded_and_never_stop_the_good_ones(tmp_path):
    from cdp.ingest.load import retry_file

    landing = tmp_path / "landing"
    folder = landing / "crm" / "contacts"
    columns = table("crm__contacts").column_names
    good = ["C-1", "", "Frau", "Jürgen", "Müller", "", "", "", "", "", "", "Australia", "", "",
            "", "New", "Web", "2025-01-01 10:00:00", "2025-01-01 10:00:00"]  # fmt: skip
    _write_csv(folder / "a_good.csv", columns, [good])
    _write_csv(folder / "b_latin1.csv", columns, [["C-2", *good[1:]]], encoding="latin-1")
    (folder / "c_empty.csv").write_bytes(b"")
    (folder / "d_binary.csv").write_bytes(b"PK\x03\x04\x00\x00garbage\xff\xfe" * 50)
    without_id = ["id" if c == "contact_id" else c for c in columns]
    _write_csv(folder / "e_no_id.csv", without_id, [good])
    huge = ["C-3", *good[1:]]
    huge[columns.index("job_title")] = "x" * 200_000
    _write_csv(folder / "f_oversized.csv", columns, [["C-4", *good[1:]], huge])
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
    result = load_table(con, table("crm__contacts"), landing)

    assert sorted(Path(p).name for p in result.files_rejected) == [
        "c_empty.csv",
        "d_binary.csv",
        "e_no_id.csv",
    ]
    reasons = {Path(p).name: r for p, r in result.files_rejected.items()}
    assert reasons["c_empty.csv"] == "empty file (0 bytes)"
    assert reasons["d_binary.csv"].startswith("binary content")
    assert reasons["e_no_id.csv"].startswith("missing required column(s) contact_id")
    loaded = con.execute(
        "select contact_id, first_name, last_name from raw.crm__contacts order by 1"
    ).fetchall()
    # Latin-1 umlauts read right; the oversized row is quarantined, its file's good row loads.
    assert loaded == [("C-1", "Jürgen", "Müller"), ("C-2", "Jürgen", "Müller"),
                      ("C-4", "Jürgen", "Müller")]  # fmt: skip
    assert any("read as cp1252" in n for n in result.notes)
    assert _count(con, "select count(*) from raw.quarantine where reason like '%field size%'") == 1
    recorded = con.execute(
        "select status, count(*) from raw._load_files group by 1 order by 1"
    ).fetchall()
    assert recorded == [("loaded", 3), ("rejected", 3)]
    lines = result.problems()
    assert any("e_no_id.csv" in line and "cdp load retry" in line for line in lines)

    # Not read again until its content changes or someone says so.
    again = load_table(con, table("crm__contacts"), landing)
    assert again.files_loaded == [] and len(again.files_rejected) == 3
    assert _count(con, "select count(*) from raw._load_files") == 6
    _write_csv(folder / "e_no_id.csv", columns, [["C-5", *good[1:]]])
    assert retry_file(con, "c_empty.csv") == 1
    fixed = load_table(con, table("crm__contacts"), landing)
    assert fixed.files_loaded == ["e_no_id.csv"]
    assert sorted(Path(p).name for p in fixed.files_rejected) == ["c_empty.csv", "d_binary.csv"]


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
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
    result = load_table(con, table("reviews__reviews"), landing)
    assert (result.rows_new, result.rows_quarantined) == (2, 1)
    assert con.execute("select line_number from raw.quarantine").fetchall() == [(3,)]


def test_load_metadata_columns_are_filled(tmp_path, small_landing):
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
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
    con = connect_warehouse(path=tmp_path / "wh.duckdb")
    load_table(con, table("email__subscribers"), small_landing)
    con.close()
    again = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    assert _count(again, "select count(*) from raw.email__subscribers") > 0
