"""Raw loads: landing files -> schema `raw` of the warehouse, idempotent and loss-free.

Each file is loaded in one transaction together with its entry in `raw._load_files`, so a file
is either wholly loaded or not at all. A file whose content was loaded before (under any name)
adds nothing, and rows already present from earlier files (same `_row_hash`) are not inserted
again. Rows that cannot be parsed or fail their column's type go to `raw.quarantine` with the
reason; a file whose columns do not match the declared schema raises `SchemaDriftError`.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import orjson
import pandas as pd

from cdp import sources as s
from cdp.sources import Table
from cdp.suppression import Suppressions
from cdp.warehouse import Warehouse, as_warehouse, duckdb_config

RAW_SCHEMA = "raw"
META_COLUMNS = ("_source_file", "_source_line", "_row_hash", "_batch_id", "_loaded_at")
_META_TYPES = {"_source_line": "bigint", "_loaded_at": "timestamp"}
_INT = re.compile(r"^\s*-?\d+\s*$")
_DECIMAL = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")
_GERMAN_TS = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4}) (\d{2}):(\d{2})$")
_GERMAN_DATE = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4})$")
_BOOLS = frozenset(("true", "false", "1", "0", "yes", "no", "ja", "nein", "t", "f"))


class SchemaDriftError(Exception):
    """A landing file's columns differ from what the source declares."""


class RowError(ValueError):
    """One row cannot enter the raw schema; the message is the quarantine reason."""


@dataclass
class LoadResult:
    table: str
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_new: int = 0
    rows_already_loaded: int = 0
    rows_quarantined: int = 0
    rows_suppressed: int = 0
    unexpected_columns: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "rows_new": self.rows_new,
            "rows_already_loaded": self.rows_already_loaded,
            "rows_quarantined": self.rows_quarantined,
            "rows_suppressed": self.rows_suppressed,
            "files_loaded": len(self.files_loaded),
            "files_skipped": len(self.files_skipped),
            "unexpected_columns": ", ".join(self.unexpected_columns) or "none",
        }


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def raw_relation(table: Table) -> str:
    return f"{quote(RAW_SCHEMA)}.{quote(table.key)}"


def ensure_schema(con, table: Table | None = None) -> None:
    con.execute(f"create schema if not exists {quote(RAW_SCHEMA)}")
    con.execute(f"""create table if not exists {quote(RAW_SCHEMA)}."_load_files" (
        table_key varchar, file_name varchar, file_sha256 varchar, size_bytes bigint,
        batch_id varchar, loaded_at timestamp, rows_read bigint, rows_new bigint,
        rows_quarantined bigint)""")
    con.execute(f"""create table if not exists {quote(RAW_SCHEMA)}."quarantine" (
        source varchar, table_name varchar, file_name varchar, line_number bigint,
        raw_text varchar, reason varchar, batch_id varchar, quarantined_at timestamp)""")
    if table is not None:
        cols = ", ".join(f"{quote(c)} varchar" for c in table.column_names)
        con.execute(f"""create table if not exists {raw_relation(table)} ({cols},
            "_source_file" varchar, "_source_line" bigint, "_row_hash" varchar,
            "_batch_id" varchar, "_loaded_at" timestamp)""")


def utc_now() -> dt.datetime:
    """Now as the warehouse stores times: UTC, without a zone."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def dict_rows(con, sql: str, params=None) -> list[dict]:
    """A query's rows as column -> value dicts."""
    cursor = as_warehouse(con).execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def table_exists(con, schema: str, name: str) -> bool:
    return bool(
        con.execute(
            "select 1 from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()
    )


def landing_files(table: Table, landing: Path) -> list[Path]:
    folder = landing / table.source / table.name
    return sorted(folder.glob(f"*.{table.extension}")) if folder.is_dir() else []


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_value(column: s.Column, value: str) -> None:
    kind = column.kind
    try:
        if kind == s.INT and not _INT.match(value):
            raise ValueError
        if kind == s.DECIMAL and not _DECIMAL.match(value):
            raise ValueError
        if kind == s.BOOL and value.strip().lower() not in _BOOLS:
            raise ValueError
        if kind in (s.TS_LOCAL, s.TS_ISO):
            dt.datetime.fromisoformat(value.strip())
        elif kind == s.DATE_ISO:
            dt.date.fromisoformat(value.strip())
        elif kind == s.TS_GERMAN:
            m = _GERMAN_TS.match(value.strip())
            dt.datetime(int(m[3]), int(m[2]), int(m[1]), int(m[4]), int(m[5]))
        elif kind == s.DATE_GERMAN:
            m = _GERMAN_DATE.match(value.strip())
            dt.date(int(m[3]), int(m[2]), int(m[1]))
    except (ValueError, TypeError):
        raise RowError(f"column {column.name!r}: {value!r} is not a valid {kind}") from None


def _validated(table: Table, values: list[str | None]) -> list[str | None]:
    """Empty strings become NULL; ids must be present; typed columns must parse."""
    values = [None if v == "" else v for v in values]
    for i, column in _checked_columns(table):
        value = values[i]
        if value is None:
            if column.kind == s.ID:
                raise RowError(f"column {column.name!r}: required id is empty")
        elif column.kind != s.ID:
            _check_value(column, value)
    return values


_CHECKED: dict[str, list[tuple[int, s.Column]]] = {}


def _checked_columns(table: Table) -> list[tuple[int, s.Column]]:
    """Positions of the columns that need a check (all but free text), computed once."""
    if table.key not in _CHECKED:
        _CHECKED[table.key] = [
            (i, c) for i, c in enumerate(table.columns) if c.kind not in (s.TEXT, s.JSON)
        ]
    return _CHECKED[table.key]


def _json_text(value) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Each reader yields (line number, raw text, values or RowError) for one file.
ParsedRow = tuple[int, str, list[str | None] | RowError]


def _read_csv(table: Table, path: Path, result: LoadResult) -> Iterator[ParsedRow]:
    with path.open(encoding="utf-8", newline="") as fh:
        header_line = fh.readline()
        header = next(csv.reader([header_line], delimiter=table.delimiter), [])
        header = [h.strip().lstrip("\ufeff") for h in header]
        _check_columns(table, path, header, result)
        positions = [header.index(c) for c in table.column_names]
        width = len(header)
        line_no = 1
        for line in fh:
            line_no += 1
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            fields = next(csv.reader(io.StringIO(text), delimiter=table.delimiter))
            if len(fields) != width:
                yield line_no, text, RowError(f"expected {width} fields, found {len(fields)}")
                continue
            yield line_no, text, [fields[p] for p in positions]


def _read_json_objects(
    table: Table, path: Path, result: LoadResult, lines: Iterator[tuple[int, str]]
) -> Iterator[ParsedRow]:
    seen_keys: set[str] = set()
    rows = 0
    for line_no, text in lines:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield line_no, text, RowError(f"invalid JSON: {exc}")
            continue
        if not isinstance(obj, dict):
            yield line_no, text, RowError(f"expected a JSON object, found {type(obj).__name__}")
            continue
        rows += 1
        seen_keys.update(obj)
        yield line_no, text, [_json_text(obj.get(c)) for c in table.column_names]
    if rows:
        _check_columns(table, path, sorted(seen_keys), result)


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                yield line_no, line.rstrip("\r\n")


def _json_array_elements(path: Path) -> Iterator[tuple[int, str]]:
    """A JSON array export. When the document is broken, fall back to one element per line so a
    broken element costs only itself (line numbers are then the file's lines)."""
    data = path.read_bytes()
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, list):
        for position, element in enumerate(document, start=1):
            yield position, orjson.dumps(element).decode()
        return
    for line_no, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        text = line.strip().rstrip(",")
        if text.startswith("["):
            text = text[1:]
        if text.endswith("]") and not text.endswith("]]"):
            text = text[:-1]
        if text.strip():
            yield line_no, text


def _check_columns(table: Table, path: Path, found: list[str], result: LoadResult) -> None:
    missing = [c for c in table.column_names if c not in found]
    if missing:
        unexpected = [c for c in found if c not in table.column_names]
        raise SchemaDriftError(
            f"{path}: schema drift in source table {table.key}: missing column(s) "
            f"{', '.join(missing)}"
            + (f"; unexpected column(s) {', '.join(unexpected)}" if unexpected else "")
            + f". Expected: {', '.join(table.column_names)}. Update cdp/sources.py and the "
            f"staging model if the export changed on purpose."
        )
    for extra in found:
        if extra not in table.column_names and extra not in result.unexpected_columns:
            result.unexpected_columns.append(extra)


def _parse(table: Table, path: Path, result: LoadResult) -> Iterator[ParsedRow]:
    if table.format == "csv":
        return _read_csv(table, path, result)
    lines = _jsonl_lines(path) if table.format == "jsonl" else _json_array_elements(path)
    return _read_json_objects(table, path, result, lines)


CHUNK_ROWS = 50_000


def load_file(
    con: Warehouse,
    table: Table,
    path: Path,
    result: LoadResult,
    suppressed: Suppressions | None = None,
) -> None:
    """Load one file in one transaction, streaming it in chunks so memory stays flat. Rows of
    people on the suppression list (erased) are dropped: counted, never stored, not even in
    quarantine."""
    sha = _sha256(path)
    already = con.execute(
        f'select 1 from {quote(RAW_SCHEMA)}."_load_files" where table_key = ? and file_sha256 = ?',
        [table.key, sha],
    ).fetchall()
    if already:
        result.files_skipped.append(path.name)
        return
    batch_id = uuid.uuid4().hex
    loaded_at = utc_now()
    source_file = str(path)
    read = inserted = dropped = 0
    bad: list[tuple] = []
    chunk: list[list] = []
    con.execute("begin transaction")
    try:
        # Drift found late (a JSON field absent from every row) rolls the whole file back.
        for line_no, text, parsed in _parse(table, path, result):
            read += 1
            try:
                if isinstance(parsed, RowError):
                    raise parsed
                values = _validated(table, parsed)
            except RowError as exc:
                bad.append(
                    (
                        table.source,
                        table.name,
                        source_file,
                        line_no,
                        text,
                        str(exc),
                        batch_id,
                        loaded_at,
                    )
                )
                continue
            if suppressed:
                named = dict(zip(table.column_names, values, strict=True))
                if suppressed.reason(table, named):
                    dropped += 1
                    continue
            row_hash = hashlib.md5(
                "\x1f".join(v if v is not None else "\x00" for v in values).encode()
            ).hexdigest()
            chunk.append([*values, source_file, line_no, row_hash, batch_id, loaded_at])
            if len(chunk) >= CHUNK_ROWS:
                inserted += _insert_chunk(con, table, chunk, batch_id)
                chunk = []
        inserted += _insert_chunk(con, table, chunk, batch_id)
        if bad:
            con.executemany(
                f'insert into {quote(RAW_SCHEMA)}."quarantine" values (?, ?, ?, ?, ?, ?, ?, ?)', bad
            )
        con.execute(
            f'insert into {quote(RAW_SCHEMA)}."_load_files" values (?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [
                table.key,
                source_file,
                sha,
                path.stat().st_size,
                batch_id,
                loaded_at,
                read,
                inserted,
                len(bad),
            ],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    result.files_loaded.append(path.name)
    result.rows_read += read
    result.rows_new += inserted
    result.rows_already_loaded += read - len(bad) - dropped - inserted
    result.rows_quarantined += len(bad)
    result.rows_suppressed += dropped


def _insert_chunk(con: Warehouse, table: Table, chunk: list[list], batch_id: str) -> int:
    """Insert rows not already loaded by an earlier file (duplicates within a file are raw data
    and stay); returns how many were inserted."""
    if not chunk:
        return 0
    frame = pd.DataFrame(chunk, columns=[*table.column_names, *META_COLUMNS], dtype=object)
    names = ", ".join(quote(c) for c in (*table.column_names, *META_COLUMNS))
    values = ", ".join(
        f"cast({quote(c)} as {_META_TYPES.get(c, 'varchar')})"
        for c in (*table.column_names, *META_COLUMNS)
    )
    con.register("incoming_rows", frame)
    try:
        return con.affected(
            f"""insert into {raw_relation(table)} ({names})
            select {values} from incoming_rows as incoming
            where not exists (
                select 1 from {raw_relation(table)} as loaded
                where loaded._row_hash = incoming._row_hash and loaded._batch_id <> ?)""",
            [batch_id],
        )
    finally:
        con.unregister("incoming_rows")


def load_table(con, table: Table, landing: Path) -> LoadResult:
    """Load every landing file of `table` not loaded before, oldest name first."""
    con = as_warehouse(con)
    ensure_schema(con, table)
    result = LoadResult(table.key)
    suppressed = Suppressions.read(con)
    for path in landing_files(table, landing):
        load_file(con, table, path, result, suppressed)
    return result


def connect(warehouse: Path | str) -> duckdb.DuckDBPyConnection:
    path = Path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), config=duckdb_config())


def export_raw_parquet(con: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, int]:
    """Each loaded raw table as Parquet in `<folder>/<table>/data.parquet` (a data lake layout
    Spark and Trino read; `register_raw_parquet` makes them dbt sources there). Returns rows
    per table."""
    written = {}
    for table in s.TABLES:
        if not table_exists(con, RAW_SCHEMA, table.key):
            continue
        target = Path(folder) / table.key
        target.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"copy (select * from {raw_relation(table)}) to "
            f"'{(target / 'data.parquet').as_posix()}' (format parquet)"
        )
        written[table.key] = con.execute(f"select count(*) from {raw_relation(table)}").fetchall()[
            0
        ][0]
    return written
