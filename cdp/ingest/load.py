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
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import orjson
import pandas as pd

from cdp.core.sql import RAW_SCHEMA, quote, utc_now
from cdp.core.warehouse import Warehouse, as_warehouse
from cdp.ingest import sources as s
from cdp.ingest.sources import Table
from cdp.ingest.suppression import Suppressions

META_COLUMNS = (
    "_source_file",
    "_source_line",
    "_row_hash",
    "_batch_id",
    "_loaded_at",
    # JSON per row, null when empty: values that failed their type ({column: {value, reason}},
    # the typed column holds null), the exported text of values stored reformatted (declared
    # date formats), and columns the declaration does not name.
    "_invalid_values",
    "_source_values",
    "_extra_values",
)
_META_TYPES = {"_source_line": "bigint", "_loaded_at": "timestamp"}
_INT = re.compile(r"^\s*-?\d+\s*$")
_DECIMAL = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")
_BOOLS = frozenset(("true", "false", "1", "0", "yes", "no", "ja", "nein", "t", "f"))
# A row longer than this is quarantined (the rest of its file loads): a field that size is a
# broken export, not data. CDP_MAX_FIELD_BYTES raises it.
DEFAULT_MAX_ROW_BYTES = 128 * 1024
FALLBACK_ENCODING = "cp1252"


def max_row_bytes() -> int:
    return int(os.environ.get("CDP_MAX_FIELD_BYTES", DEFAULT_MAX_ROW_BYTES))


class FileRejected(Exception):
    """A landing file that cannot be read as a whole; the message is the reason. It is recorded
    in raw._load_files as rejected and not read again until its content changes."""


class SchemaDriftError(FileRejected):
    """A landing file lacks a column its source declares required."""


class RowError(ValueError):
    """One row cannot enter the raw schema; the message is the quarantine reason."""


@dataclass
class LoadResult:
    table: str
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)
    # file name -> reason, for files rejected now or before (until their content changes)
    files_rejected: dict[str, str] = field(default_factory=dict)
    rows_read: int = 0
    rows_new: int = 0
    rows_already_loaded: int = 0
    rows_quarantined: int = 0
    rows_suppressed: int = 0
    values_invalid: int = 0
    unexpected_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "rows_new": self.rows_new,
            "rows_already_loaded": self.rows_already_loaded,
            "rows_quarantined": self.rows_quarantined,
            "rows_suppressed": self.rows_suppressed,
            "values_invalid": self.values_invalid,
            "files_loaded": len(self.files_loaded),
            "files_skipped": len(self.files_skipped),
            "files_rejected": len(self.files_rejected),
            "unexpected_columns": ", ".join(self.unexpected_columns) or "none",
            "missing_optional_columns": ", ".join(self.missing_columns) or "none",
        }

    def add(self, name: str, counts: tuple[int, ...]) -> None:
        """Count one loaded file or query: (read, inserted, quarantined, dropped, invalid)."""
        read, inserted, bad, dropped, invalid = counts
        self.files_loaded.append(name)
        self.rows_read += read
        self.rows_new += inserted
        self.rows_already_loaded += read - bad - dropped - inserted
        self.rows_quarantined += bad
        self.rows_suppressed += dropped
        self.values_invalid += invalid

    def problems(self) -> list[str]:
        """One line per thing an operator should know: rejected files, what to do about them."""
        lines = [
            f"{name}: rejected ({reason}); fix the file and run `cdp load retry {name}`, or "
            "land a corrected copy"
            for name, reason in self.files_rejected.items()
        ]
        if self.missing_columns:
            lines.append(
                f"{self.table}: optional column(s) missing in a file, loaded as null: "
                + ", ".join(self.missing_columns)
            )
        if self.unexpected_columns:
            lines.append(
                f"{self.table}: column(s) not declared, kept in _extra_values: "
                + ", ".join(self.unexpected_columns)
            )
        return lines + self.notes


def raw_relation(table: Table) -> str:
    return f"{quote(RAW_SCHEMA)}.{quote(table.key)}"


LOAD_FILES = f'{quote(RAW_SCHEMA)}."_load_files"'


def ensure_schema(con, table: Table | None = None) -> None:
    con.execute(f"create schema if not exists {quote(RAW_SCHEMA)}")
    con.execute(f"""create table if not exists {LOAD_FILES} (
        table_key varchar, file_name varchar, file_sha256 varchar, size_bytes bigint,
        batch_id varchar, loaded_at timestamp, rows_read bigint, rows_new bigint,
        rows_quarantined bigint)""")
    # Added later: warehouses loaded before keep their rows (status null = loaded).
    for column in ("status", "reason", "cursor_value"):
        con.execute(f"alter table {LOAD_FILES} add column if not exists {column} varchar")
    con.execute(f"""create table if not exists {quote(RAW_SCHEMA)}."quarantine" (
        source varchar, table_name varchar, file_name varchar, line_number bigint,
        raw_text varchar, reason varchar, batch_id varchar, quarantined_at timestamp)""")
    if table is not None:
        cols = ", ".join(f"{quote(c)} varchar" for c in table.column_names)
        con.execute(f"""create table if not exists {raw_relation(table)} ({cols},
            "_source_file" varchar, "_source_line" bigint, "_row_hash" varchar,
            "_batch_id" varchar, "_loaded_at" timestamp)""")
        for column in ("_invalid_values", "_source_values", "_extra_values"):
            con.execute(
                f"alter table {raw_relation(table)} add column if not exists {column} varchar"
            )


def landing_files(table: Table, landing: Path) -> list[Path]:
    return sorted(p for p in Path(landing).glob(table.landing_glob) if p.is_file())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _parsed_value(column: s.Column, value: str) -> str:
    """The value as stored: checked against its kind; dates and timestamps become ISO-8601 text
    unless kept as exported. Raises ValueError when it does not parse."""
    kind = column.kind
    text = value.strip()
    if kind == s.INT and not _INT.match(value):
        raise ValueError
    if kind == s.DECIMAL and not _DECIMAL.match(value):
        raise ValueError
    if kind == s.BOOL and text.lower() not in _BOOLS:
        raise ValueError
    if kind in (s.DATE, s.TIMESTAMP):
        iso = _declared_time(column, text)
        return value if column.as_exported else iso
    return value


def _declared_time(column: s.Column, text: str) -> str:
    """ISO-8601 text of a declared date or timestamp; a timestamp with an offset in UTC."""
    parsed = None
    for fmt in column.formats:
        try:
            parsed = dt.datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        if column.formats:
            raise ValueError
        parsed = dt.datetime.fromisoformat(text)
    if column.kind == s.DATE:
        return parsed.date().isoformat()
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed.isoformat(sep=" ")


def _validated(table: Table, values: list[str | None]) -> tuple[list[str | None], dict, dict]:
    """Empty strings become NULL; ids must be present. A typed value that does not parse becomes
    NULL and is returned with its reason; a reformatted value's exported text is returned too.
    Returns (values, invalid, exported)."""
    values = [None if v == "" else v for v in values]
    invalid: dict = {}
    exported: dict = {}
    for i, column in _checked_columns(table):
        value = values[i]
        if value is None:
            if column.kind == s.ID and column.is_required:
                raise RowError(f"column {column.name!r}: required id is empty")
            continue
        if column.kind == s.ID:
            continue
        try:
            stored = _parsed_value(column, value)
        except (ValueError, TypeError, OverflowError):
            values[i] = None
            invalid[column.name] = {
                "value": value,
                "reason": f"{value!r} is not a valid {_kind_label(column)}",
            }
            continue
        if stored != value:
            values[i] = stored
            exported[column.name] = value
    return values, invalid, exported


def _kind_label(column: s.Column) -> str:
    if column.formats:
        return f"{column.kind} ({' or '.join(column.formats)})"
    return column.kind


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
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


# Each reader yields (line number, raw text, values or RowError, extra columns) for one file.
ParsedRow = tuple[int, str, list[str | None] | RowError, dict | None]


def _too_long(text: str, limit: int) -> RowError | None:
    if len(text) > limit:
        return RowError(
            f"row of {len(text):,} characters exceeds the field size limit of {limit:,} "
            "(CDP_MAX_FIELD_BYTES)"
        )
    return None


def _read_csv(table: Table, path: Path, result: LoadResult, encoding: str) -> Iterator[ParsedRow]:
    limit = max_row_bytes()
    csv.field_size_limit(max(limit, 131_072) + 1)
    with path.open(encoding=encoding, newline="") as fh:
        header_line = fh.readline()
        header = next(csv.reader([header_line], delimiter=table.delimiter), [])
        header = [h.strip().lstrip("\ufeff") for h in header]
        if not any(header):
            raise FileRejected("no header line")
        _check_columns(table, header, result)
        positions = [header.index(c) if c in header else None for c in table.column_names]
        extras = [(i, h) for i, h in enumerate(header) if h not in table.column_names]
        width = len(header)
        line_no = 1
        for line in fh:
            line_no += 1
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            error = _too_long(text, limit)
            if error is None:
                try:
                    fields = next(csv.reader(io.StringIO(text), delimiter=table.delimiter))
                except csv.Error as exc:
                    error = RowError(f"unreadable CSV row: {exc}")
            if error is not None:
                yield line_no, text[:limit], error, None
                continue
            if len(fields) != width:
                error = RowError(f"expected {width} fields, found {len(fields)}")
                yield line_no, text, error, None
                continue
            extra = {name: fields[i] for i, name in extras if fields[i] != ""} or None
            yield line_no, text, [None if p is None else fields[p] for p in positions], extra


def _read_json_objects(
    table: Table, result: LoadResult, lines: Iterator[tuple[int, str]]
) -> Iterator[ParsedRow]:
    limit = max_row_bytes()
    seen_keys: set[str] = set()
    declared = set(table.column_names)
    rows = 0
    for line_no, text in lines:
        error = _too_long(text, limit)
        if error is not None:
            yield line_no, text[:limit], error, None
            continue
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield line_no, text, RowError(f"invalid JSON: {exc}"), None
            continue
        if not isinstance(obj, dict):
            error = RowError(f"expected a JSON object, found {type(obj).__name__}")
            yield line_no, text, error, None
            continue
        rows += 1
        seen_keys.update(obj)
        extra = {k: v for k, v in obj.items() if k not in declared and v is not None} or None
        yield line_no, text, [_json_text(obj.get(c)) for c in table.column_names], extra
    if rows:
        _check_columns(table, sorted(seen_keys), result)


def _jsonl_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    with path.open(encoding=encoding) as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                yield line_no, line.rstrip("\r\n")


def _json_array_elements(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """A JSON array export. When the document is broken, fall back to one element per line so a
    broken element costs only itself (line numbers are then the file's lines)."""
    data = path.read_bytes().decode(encoding)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, list):
        for position, element in enumerate(document, start=1):
            yield position, orjson.dumps(element).decode()
        return
    for line_no, line in enumerate(data.splitlines(), start=1):
        text = line.strip().rstrip(",")
        if text.startswith("["):
            text = text[1:]
        if text.endswith("]") and not text.endswith("]]"):
            text = text[:-1]
        if text.strip():
            yield line_no, text


def _parquet_rows(path: Path) -> Iterator[tuple[int, str]]:
    """A Parquet file's rows as JSON objects (read by an in-memory DuckDB)."""
    reader = duckdb.connect()
    try:
        cursor = reader.execute("select * from read_parquet(?)", [str(path)])
    except duckdb.Error as exc:
        raise FileRejected(f"not a readable Parquet file: {exc}") from None
    names = [d[0] for d in cursor.description]
    line_no = 0
    while batch := cursor.fetchmany(10_000):
        for row in batch:
            line_no += 1
            obj = {n: _json_text(v) for n, v in zip(names, row, strict=True)}
            yield line_no, orjson.dumps(obj).decode()
    reader.close()


def _check_columns(table: Table, found: list[str], result: LoadResult) -> None:
    missing = [c.name for c in table.columns if c.name not in found and c.is_required]
    if missing:
        unexpected = [c for c in found if c not in table.column_names]
        raise SchemaDriftError(
            f"missing required column(s) {', '.join(missing)}"
            + (f"; unexpected column(s) {', '.join(unexpected)}" if unexpected else "")
            + f"; expected: {', '.join(table.column_names)}"
        )
    for column in table.column_names:
        if column not in found and column not in result.missing_columns:
            result.missing_columns.append(column)
    for extra in found:
        if extra not in table.column_names and extra not in result.unexpected_columns:
            result.unexpected_columns.append(extra)


def _parse(table: Table, path: Path, result: LoadResult, encoding: str) -> Iterator[ParsedRow]:
    if table.format == "csv":
        return _read_csv(table, path, result, encoding)
    if table.format == "jsonl":
        lines = _jsonl_lines(path, encoding)
    elif table.format == "parquet":
        lines = _parquet_rows(path)
    else:
        lines = _json_array_elements(path, encoding)
    return _read_json_objects(table, result, lines)


def _precheck(table: Table, path: Path) -> None:
    """Reject what cannot be a text export at all, before reading it row by row."""
    size = path.stat().st_size
    if size == 0:
        raise FileRejected("empty file (0 bytes)")
    if table.format == "parquet" or table.encoding.lower().startswith("utf-16"):
        return
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    if b"\x00" in head:
        offset = head.index(b"\x00")
        raise FileRejected(
            f"binary content (a NUL byte at offset {offset}), not a {table.format.upper()} export"
        )


def _encodings(table: Table) -> list[str]:
    return ["utf-8", FALLBACK_ENCODING] if table.encoding == "auto" else [table.encoding]


CHUNK_ROWS = 50_000
STAGED_ROWS = "cdp_staged_rows"  # a file's rows before they join the raw table


def load_file(
    con: Warehouse,
    table: Table,
    path: Path,
    result: LoadResult,
    suppressed: Suppressions | None = None,
) -> None:
    """Load one file in one transaction, streaming it in chunks so memory stays flat. Rows of
    people on the suppression list (erased) are dropped: counted, never stored, not even in
    quarantine. A file that cannot be read is recorded as rejected and raises nothing."""
    sha = _sha256(path)
    earlier = con.execute(
        f"select status, reason from {LOAD_FILES} where table_key = ? and file_sha256 = ?",
        [table.key, sha],
    ).fetchall()
    if earlier:
        status, reason = earlier[0]
        if status == "rejected":
            result.files_rejected[str(path)] = f"{reason}; unchanged since"
        else:
            result.files_skipped.append(path.name)
        return
    try:
        _precheck(table, path)
        encodings = _encodings(table)
        for position, encoding in enumerate(encodings):
            try:
                rows = _parse(table, path, result, encoding)
                counts = _load_rows(
                    con, table, str(path), sha, path.stat().st_size, rows, suppressed
                )
                break
            except UnicodeDecodeError as exc:
                if position + 1 < len(encodings):
                    continue
                raise FileRejected(
                    f"not valid {encoding} text ({exc.reason} at byte {exc.start}); declare its "
                    "encoding in the source"
                ) from None
        if encoding != encodings[0]:
            result.notes.append(f"{path}: not UTF-8, read as {encoding}")
    except FileRejected as exc:
        _record_rejected(con, table, path, sha, str(exc))
        result.files_rejected[str(path)] = str(exc)
        return
    result.add(path.name, counts)


def _record_rejected(con: Warehouse, table: Table, path: Path, sha: str, reason: str) -> None:
    con.execute(
        f"insert into {LOAD_FILES} (table_key, file_name, file_sha256, size_bytes, batch_id, "
        "loaded_at, rows_read, rows_new, rows_quarantined, status, reason) "
        "values (?, ?, ?, ?, ?, ?, 0, 0, 0, 'rejected', ?)",
        [table.key, str(path), sha, path.stat().st_size, uuid.uuid4().hex, utc_now(), reason],
    )


def _load_rows(
    con, table, source_file, sha, size, rows: Iterator[ParsedRow], suppressed, cursor=None
) -> tuple[int, ...]:
    """The rows of one file (or query), staged chunk by chunk in a session-private table, then
    moved into the raw table in one transaction; returns (read, inserted, quarantined, dropped,
    invalid values). Rolls back and re-raises on anything unexpected."""
    batch_id = uuid.uuid4().hex
    loaded_at = utc_now()
    read = dropped = invalid_values = 0
    bad: list[tuple] = []
    chunk: list[list] = []
    # Staged, not inserted chunk by chunk into one open transaction: DuckDB holds a transaction's
    # appends in memory (7.2M web events took the 10M bench past 8 GiB), and each chunk's check
    # against rows loaded earlier scanned the whole raw table again.
    con.replace_temp_table(STAGED_ROWS, f"select * from {raw_relation(table)} where false")
    try:
        # Drift found late (a JSON field absent from every row) rolls the whole file back.
        for line_no, text, parsed, extra in rows:
            read += 1
            try:
                if isinstance(parsed, RowError):
                    raise parsed
                values, invalid, exported = _validated(table, parsed)
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
            invalid_values += len(invalid)
            # Over the exported values, so a reformatted or invalid value still tells rows apart.
            row_hash = hashlib.md5(
                "\x1f".join(v if v else "\x00" for v in parsed).encode()
            ).hexdigest()
            chunk.append(
                [
                    *values,
                    source_file,
                    line_no,
                    row_hash,
                    batch_id,
                    loaded_at,
                    _json_or_null(invalid),
                    _json_or_null(exported),
                    _json_or_null(extra),
                ]
            )
            if len(chunk) >= CHUNK_ROWS:
                _stage_chunk(con, table, chunk)
                chunk = []
        _stage_chunk(con, table, chunk)
    except BaseException:
        con.execute(f"drop table if exists {con.temp_schema}.{STAGED_ROWS}")
        raise
    con.execute("begin transaction")
    try:
        inserted = _insert_staged(con, table)
        if bad:
            con.executemany(
                f'insert into {quote(RAW_SCHEMA)}."quarantine" values (?, ?, ?, ?, ?, ?, ?, ?)', bad
            )
        con.execute(
            f"insert into {LOAD_FILES} (table_key, file_name, file_sha256, size_bytes, "
            "batch_id, loaded_at, rows_read, rows_new, rows_quarantined, status, reason, "
            "cursor_value) values (?, ?, ?, ?, ?, ?, ?, ?, ?, 'loaded', null, ?)",
            [
                table.key,
                source_file,
                sha,
                size,
                batch_id,
                loaded_at,
                read,
                inserted,
                len(bad),
                cursor,
            ],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.execute(f"drop table if exists {con.temp_schema}.{STAGED_ROWS}")
    return read, inserted, len(bad), dropped, invalid_values


def _json_or_null(values: dict | None) -> str | None:
    if not values:
        return None
    return orjson.dumps(values, default=str, option=orjson.OPT_SORT_KEYS).decode()


def _stage_chunk(con: Warehouse, table: Table, chunk: list[list]) -> None:
    if not chunk:
        return
    frame = pd.DataFrame(chunk, columns=[*table.column_names, *META_COLUMNS], dtype=object)
    names = ", ".join(quote(c) for c in (*table.column_names, *META_COLUMNS))
    values = ", ".join(
        f"cast({quote(c)} as {_META_TYPES.get(c, 'varchar')})"
        for c in (*table.column_names, *META_COLUMNS)
    )
    con.register("incoming_rows", frame)
    try:
        con.execute(f"insert into {STAGED_ROWS} ({names}) select {values} from incoming_rows")
    finally:
        con.unregister("incoming_rows")


def _insert_staged(con: Warehouse, table: Table) -> int:
    """Move the staged rows not already loaded by an earlier file into the raw table (duplicates
    within a file are raw data and stay); returns how many were inserted."""
    return con.affected(
        f"""insert into {raw_relation(table)}
        select * from {STAGED_ROWS} as incoming
        where not exists (
            select 1 from {raw_relation(table)} as loaded
            where loaded._row_hash = incoming._row_hash)"""
    )


def load_table(con, table: Table, landing: Path) -> LoadResult:
    """Load every landing file of `table` not loaded before, oldest name first. A file that
    cannot be read is rejected (recorded, reported in the result) and the others still load."""
    con = as_warehouse(con)
    ensure_schema(con, table)
    result = LoadResult(table.key)
    suppressed = Suppressions.read(con)
    if table.format == "postgres":
        load_query(con, table, result, suppressed)
        return result
    for path in landing_files(table, landing):
        load_file(con, table, path, result, suppressed)
    return result


def load_query(con: Warehouse, table: Table, result: LoadResult, suppressed=None) -> None:
    """Rows of a query on a PostgreSQL database (its DSN in the environment variable the
    declaration names), incrementally: only rows whose cursor column is past the largest value
    loaded before. A database that cannot be reached costs this table's refresh only."""
    import psycopg2

    dsn = os.environ.get(table.connection_env or "")
    label = f"postgres:{table.connection_env}:{table.key}"
    if not dsn:
        result.notes.append(f"{table.key}: set {table.connection_env} to its database's DSN")
        return
    last = None
    if table.cursor:
        last = con.execute(
            f"select max(cursor_value) from {LOAD_FILES} where table_key = ? and status = 'loaded'",
            [table.key],
        ).fetchall()[0][0]
    sql = f"select * from ({table.query}) as source_rows"
    params: list = []
    if table.cursor:
        column = f"source_rows.{quote(table.cursor)}"
        if last is not None:
            sql += f" where {column} > %s"  # the text literal takes the column's type
            params.append(last)
        sql += f" order by {column}"
    try:
        remote = psycopg2.connect(dsn, connect_timeout=10)
    except psycopg2.Error as exc:
        result.notes.append(f"{label}: cannot connect ({str(exc).strip()}); kept what was loaded")
        return
    try:
        with remote, remote.cursor(name="cdp_source_rows") as cursor:
            cursor.itersize = CHUNK_ROWS
            cursor.execute(sql, params)
            rows = list(_query_rows(table, cursor, result))
    except (psycopg2.Error, FileRejected) as exc:
        result.notes.append(f"{label}: the query failed ({str(exc).strip()}); kept what was loaded")
        return
    finally:
        remote.close()
    if not rows:
        result.files_skipped.append(label)
        return
    newest = None
    if table.cursor:  # ordered by it: the last row holds the largest value
        newest = rows[-1][2][table.column_names.index(table.cursor)]
    sha = hashlib.sha256(f"{label}|{last}|{newest}|{len(rows)}".encode()).hexdigest()
    counts = _load_rows(con, table, label, sha, 0, iter(rows), suppressed, cursor=newest)
    result.add(label, counts)


def _query_rows(table: Table, cursor, result: LoadResult) -> Iterator[ParsedRow]:
    """A query's rows as the readers give a file's: values as text, undeclared columns apart."""
    declared = set(table.column_names)
    names: list[str] = []
    for row_no, row in enumerate(cursor, start=1):
        if not names:
            names = [d[0] for d in cursor.description]
            _check_columns(table, names, result)
        record = dict(zip(names, row, strict=True))
        values = [_json_text(record.get(c)) for c in table.column_names]
        extra = {k: _json_text(v) for k, v in record.items() if k not in declared and v is not None}
        yield row_no, orjson.dumps(record, default=str).decode(), values, extra or None


def rejected_files(con) -> list[tuple]:
    """(table, file, reason, when) of every rejected file not loaded since."""
    con = as_warehouse(con)
    ensure_schema(con)
    return con.execute(
        f"select table_key, file_name, reason, loaded_at from {LOAD_FILES} "
        "where status = 'rejected' order by loaded_at"
    ).fetchall()


def retry_file(con, file_name: str) -> int:
    """Forget the rejections of a file (by path or name) so the next load reads it again;
    returns how many were forgotten."""
    con = as_warehouse(con)
    ensure_schema(con)
    return con.affected(
        f"delete from {LOAD_FILES} where status = 'rejected' and (file_name = ? or file_name "
        "like ?)",
        [file_name, "%/" + Path(file_name).name],
    )


def export_raw_parquet(con: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, int]:
    """Every relation of the raw layer (loaded tables, relations published from declared
    sources, identity decisions), but the loader's own bookkeeping, as Parquet in
    `<folder>/<table>/data.parquet` (a data lake layout Spark and Trino read;
    `register_raw_parquet` makes them dbt sources there). Returns rows per table."""
    names = [
        name
        for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = ?"
            " order by table_name",
            [RAW_SCHEMA],
        ).fetchall()
        if name not in ("_load_files", "quarantine")
    ]
    written = {}
    for name in names:
        relation = f"{quote(RAW_SCHEMA)}.{quote(name)}"
        target = Path(folder) / name
        target.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"copy (select * from {relation}) to "
            f"'{(target / 'data.parquet').as_posix()}' (format parquet)"
        )
        written[name] = con.execute(f"select count(*) from {relation}").fetchall()[0][0]
    return written
