"""One connection interface for the Python layer over the warehouses dbt builds: DuckDB (a file,
the default) and PostgreSQL (`CDP_TARGET=postgres`, configured by the same `CDP_PG_*` variables
as the dbt profile).

The loader, the reverse-ETL engine, erasure, enrichment and predictions talk to a `Warehouse`:
DB-API style `execute` with `?` placeholders, `register` of a DataFrame as a queryable relation,
explicit transactions. The few SQL spellings that differ live here as methods (`sha256`, the
emails in a text, `affected`), next to the dbt dispatch macros that do the same for the models.
"""

from __future__ import annotations

import csv
import io
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import psycopg2

# What a warehouse raises: a missing or busy DuckDB file, a database down, a table not built yet.
WAREHOUSE_ERRORS = (duckdb.Error, psycopg2.Error)

TARGETS = ("duckdb", "postgres")
# Where the project writes: dbt's folder schemas and the Python layer's own (cdp_build: what
# each dbt node was last built from, cdp.core.build_state).
CDP_SCHEMAS = frozenset(
    ("raw", "staging", "intermediate", "marts", "reference", "snapshots", "reverse_etl",
     "privacy", "enrichment", "ml", "cdp_build")
)  # fmt: skip
# Single-quoted SQL strings (with '' escapes) and double-quoted identifiers: placeholders inside
# them are text, not parameters.
_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")
_NAMED = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def target() -> str:
    name = os.environ.get("CDP_TARGET", "duckdb")
    if name not in TARGETS:
        raise ValueError(f"CDP_TARGET={name!r}: expected one of {', '.join(TARGETS)}")
    return name


def postgres_settings() -> dict:
    """The dbt profile's postgres target, from the same variables and defaults."""
    return {
        "host": os.environ.get("CDP_PG_HOST", "127.0.0.1"),
        "port": int(os.environ.get("CDP_PG_PORT", "5432")),
        "user": os.environ.get("CDP_PG_USER", "postgres"),
        "password": os.environ.get("CDP_PG_PASSWORD", ""),
        "dbname": os.environ.get("CDP_PG_DATABASE", "postgres"),
    }


def describe() -> str:
    """Where the warehouse is, for messages (never the password)."""
    if target() == "postgres":
        pg = postgres_settings()
        return f"postgresql://{pg['user']}@{pg['host']}:{pg['port']}/{pg['dbname']}"
    from cdp.core.config import warehouse_path

    return warehouse_path()


class Warehouse(ABC):
    """The common interface; `DuckDBWarehouse` and `PostgresWarehouse` implement it."""

    dialect: str

    @abstractmethod
    def execute(self, sql: str, params=None):
        """Run one statement with `?` or `$name` placeholders; a cursor-like result (fetchall,
        fetchone, description, df)."""

    @abstractmethod
    def executemany(self, sql: str, rows) -> None: ...

    @abstractmethod
    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Make a DataFrame queryable under `name` for this connection."""

    @abstractmethod
    def unregister(self, name: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def affected(self, sql: str, params=None) -> int:
        """Run an insert, update or delete; how many rows it touched."""

    temp_schema = "temp"

    def replace_temp_table(self, name: str, select_sql: str, params=None) -> None:
        """(Re)create a session-private table from a query; views on the old one are dropped
        with it (PostgreSQL refuses otherwise) and are made again by their owner."""
        self.execute(f"drop table if exists {self.temp_schema}.{name} cascade")
        self.execute(f"create temporary table {name} as {select_sql}", params)

    def replace_temp_view(self, name: str, select_sql: str) -> None:
        """(Re)create a session-private view: a query read once or twice costs less than
        writing its rows into a table."""
        self.execute(f"drop view if exists {self.temp_schema}.{name}")
        self.execute(f"create temporary view {name} as {select_sql}")

    def checkpoint(self) -> None:  # noqa: B027 - only DuckDB needs one
        """Write deletions out so freed space is reused (DuckDB keeps old blocks otherwise)."""

    @contextmanager
    def serialized(self, name: str) -> Iterator[None]:
        """Statements that must not run beside the same statements of another session, such as
        setting up a schema: PostgreSQL's `create ... if not exists` fails when two sessions
        create the same object at once. DuckDB has one writer per file already."""
        yield

    def prepare_wide_scans(self) -> None:  # noqa: B027 - only PostgreSQL needs it
        """Before queries that OR dozens of conditions over every column of a table (erasure
        and its verification)."""

    def sha256(self, expression: str) -> str:
        """SQL: the lower-case hex SHA-256 of a text expression (as hashlib computes it)."""
        return f"sha256({expression})"

    @abstractmethod
    def any_match_hash_in(self, expression: str, pattern: str, hashes: str, prefix="") -> str:
        """SQL: some match of regex `pattern` in `expression`, after the SQL text `prefix`
        (`source || ':' || `), hashes to a value of the single-column query `hashes`."""

    def json_object(self, fields: dict[str, str], source: str) -> str:
        """SQL: per row of `source` (a FROM clause), the JSON text of an object holding each key
        of `fields` with the value of its SQL expression, encoded as orjson encodes what a query
        returns to Python: timestamps in ISO 8601, non-finite numbers as null. Built by the
        warehouse, a record's fields cost one value to fetch instead of one per field."""
        if not fields:
            return "'{}'"
        probe = self.execute(f"select {', '.join(fields.values())} from {source} limit 0")
        pairs = ", ".join(
            f"{_text_literal(name)}, {self._json_value(expression, column[1])}"
            for (name, expression), column in zip(fields.items(), probe.description, strict=True)
        )
        return self._json_object_of(pairs)

    @abstractmethod
    def _json_value(self, expression: str, type_code) -> str:
        """`expression` (of the driver's type code) as json_object should encode it."""

    @abstractmethod
    def _json_object_of(self, pairs: str) -> str: ...

    @abstractmethod
    def content_fingerprint(self, relation: str) -> str:
        """SQL: one text value that changes when any row of `relation` is added, removed or
        altered (its row count and an order-free sum of row hashes)."""

    def holds_cdp_data(self, schema: str) -> bool:
        """Whether a schema is the CDP's (erasure scans those): every schema of the DuckDB
        file; on a shared PostgreSQL database, only the project's own."""
        return schema not in ("information_schema", "pg_catalog")

    def text_type_names(self) -> tuple[str, ...]:
        """information_schema data_type values of text columns."""
        return ("VARCHAR",)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def execute(self, sql: str, params=None):
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)

    def executemany(self, sql: str, rows) -> None:
        self.con.executemany(sql, rows)

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.con.register(name, frame)

    def unregister(self, name: str) -> None:
        self.con.unregister(name)

    def affected(self, sql: str, params=None) -> int:
        return self.execute(sql, params).fetchall()[0][0]

    def checkpoint(self) -> None:
        self.con.execute("checkpoint")

    def any_match_hash_in(self, expression: str, pattern: str, hashes: str, prefix="") -> str:
        return (
            f"list_has_any(list_transform(regexp_extract_all({expression}, '{pattern}'), "
            f"lambda x: sha256({prefix}x)), (select list(h) from ({hashes}) as hashes(h)))"
        )

    def _json_value(self, expression: str, type_code) -> str:
        kind = str(type_code)
        if kind.startswith("TIMESTAMP"):  # cast as text: Python's isoformat with a space
            return f"replace(cast({expression} as varchar), ' ', 'T')"
        if kind in ("DOUBLE", "FLOAT"):  # json_object writes NaN and Infinity: invalid JSON
            return f"case when isfinite({expression}) then {expression} end"
        return expression

    def _json_object_of(self, pairs: str) -> str:
        return f"cast(json_object({pairs}) as varchar)"

    def content_fingerprint(self, relation: str) -> str:
        return (
            "select cast(count(*) as varchar) || ':' || "
            f"cast(coalesce(sum(cast(hash(t) as hugeint)), 0) as varchar) from {relation} as t"
        )

    def close(self) -> None:
        self.con.close()


class PostgresCursor:
    """What `execute` returns on PostgreSQL: the cursor, plus DuckDB's `df()`."""

    def __init__(self, cursor):
        self.cursor = cursor

    def fetchall(self) -> list[tuple]:
        return self.cursor.fetchall() if self.cursor.description else []

    def fetchone(self):
        return self.cursor.fetchone()

    @property
    def description(self):
        return self.cursor.description

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount

    def df(self) -> pd.DataFrame:
        names = [d[0] for d in self.cursor.description]
        return pd.DataFrame(self.cursor.fetchall(), columns=names)


def _pg_params(sql: str) -> str:
    """DuckDB's placeholders (`?`, `$name`) as psycopg2's (`%s`, `%(name)s`), a literal `%`
    doubled; quoted text kept."""
    parts = _QUOTED.split(sql)
    for i in range(0, len(parts), 2):  # even parts are outside quotes
        parts[i] = _NAMED.sub(r"%(\1)s", parts[i].replace("%", "%%").replace("?", "%s"))
    for i in range(1, len(parts), 2):
        parts[i] = parts[i].replace("%", "%%")
    return "".join(parts)


def _pg_type(series: pd.Series) -> str:
    kind = series.dtype.kind
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "bigint"
    if kind == "f":
        return "double precision"
    if kind == "M":
        return "timestamp"
    return "text"


class PostgresWarehouse(Warehouse):
    """Autocommit, so each statement stands alone unless the caller opens a transaction with
    `begin transaction` ... `commit` (the same statements work on DuckDB)."""

    dialect = "postgres"
    temp_schema = "pg_temp"

    def __init__(self, **settings):
        self.con = psycopg2.connect(connect_timeout=5, **settings)
        self.con.autocommit = True

    @contextmanager
    def serialized(self, name: str) -> Iterator[None]:
        """One transaction holding an advisory lock on `name`: the next session waits for the
        commit, then finds what this one created."""
        self.execute("begin transaction")
        try:
            self.execute("select pg_advisory_xact_lock(hashtext(?))", [name])
            yield
            self.execute("commit")
        except BaseException:
            self.execute("rollback")
            raise

    def execute(self, sql: str, params=None):
        cursor = self.con.cursor()
        if params is None:
            cursor.execute(sql)
        else:
            cursor.execute(_pg_params(sql), params if isinstance(params, dict) else list(params))
        return PostgresCursor(cursor)

    def executemany(self, sql: str, rows) -> None:
        from psycopg2.extras import execute_batch

        with self.con.cursor() as cursor:
            execute_batch(cursor, _pg_params(sql), [list(r) for r in rows], page_size=1000)

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """A temporary table holding the frame, copied in with COPY (fast, typed by dtype)."""
        columns = ", ".join(f'"{c}" {_pg_type(frame[c])}' for c in frame.columns)
        with self.con.cursor() as cursor:
            cursor.execute(f'drop table if exists {self.temp_schema}."{name}"')
            cursor.execute(f'create temporary table "{name}" ({columns})')
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for row in frame.itertuples(index=False, name=None):
                writer.writerow(["\\N" if _missing(v) else v for v in row])
            buffer.seek(0)
            cursor.copy_expert(f"copy \"{name}\" from stdin with (format csv, null '\\N')", buffer)

    def unregister(self, name: str) -> None:
        self.execute(f'drop table if exists {self.temp_schema}."{name}"')

    def affected(self, sql: str, params=None) -> int:
        return self.execute(sql, params).rowcount

    def prepare_wide_scans(self) -> None:
        # The JIT compiles such a query for seconds, far longer than it runs (raw.crm__contacts,
        # 4,473 rows, 39 conditions: 5.8 of 6.1 s): off for this session.
        self.execute("set jit = off")

    def sha256(self, expression: str) -> str:
        return f"encode(sha256(convert_to({expression}, 'UTF8')), 'hex')"

    def any_match_hash_in(self, expression: str, pattern: str, hashes: str, prefix="") -> str:
        return (
            f"exists (select 1 from regexp_matches({expression}, '{pattern}', 'g') as m(t) "
            f"where {self.sha256(f'{prefix}m.t[1]')} in ({hashes}))"
        )

    def _json_value(self, expression: str, type_code) -> str:
        # json_build_object writes NaN and infinity as strings; numeric has no infinity before
        # PostgreSQL 14, so only its NaN is asked for
        if type_code in (700, 701):  # float4, float8
            return (
                f"case when {expression} in ('NaN', 'Infinity', '-Infinity') then null "
                f"else {expression} end"
            )
        if type_code == 1700:  # numeric
            return f"case when {expression} = 'NaN' then null else {expression} end"
        return expression  # timestamps come in ISO 8601 already

    def _json_object_of(self, pairs: str) -> str:
        return f"json_build_object({pairs})::text"

    def content_fingerprint(self, relation: str) -> str:
        return (
            "select count(*)::text || ':' || "
            f"coalesce(sum(hashtextextended(t::text, 0)), 0)::text from {relation} as t"
        )

    def holds_cdp_data(self, schema: str) -> bool:
        return schema in CDP_SCHEMAS or schema == os.environ.get("CDP_PG_SCHEMA", "cdp")

    def text_type_names(self) -> tuple[str, ...]:
        return ("text", "character varying")

    def close(self) -> None:
        self.con.close()


def _text_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NaT


MEMORY_LIMIT_ENV = "CDP_DUCKDB_MEMORY_LIMIT"  # profiles.yml reads it too


def duckdb_config() -> dict[str, str]:
    """Settings of the DuckDB connections the loader, the Python layer and the matcher open:
    above the memory limit, DuckDB spills to disk. (DuckDB refuses two connections with different
    settings to one file in one process, so short read-only checks keep the defaults.)"""
    return {"memory_limit": os.environ.get(MEMORY_LIMIT_ENV, "80%")}


def connect_warehouse(read_only: bool = False, path: str | Path | None = None) -> Warehouse:
    """The warehouse of `CDP_TARGET`: the DuckDB file (`path`, else `CDP_WAREHOUSE`) or the
    PostgreSQL database of the dbt profile."""
    if target() == "postgres":
        return PostgresWarehouse(**postgres_settings())
    from cdp.core.config import warehouse_path

    file = Path(path or warehouse_path())
    if read_only:
        return DuckDBWarehouse(duckdb.connect(str(file), read_only=True, config=duckdb_config()))
    file.parent.mkdir(parents=True, exist_ok=True)
    return DuckDBWarehouse(duckdb.connect(str(file), config=duckdb_config()))


def as_warehouse(con) -> Warehouse:
    """Accept a `Warehouse` or a plain DuckDB connection (scripts, notebooks, tests)."""
    if isinstance(con, Warehouse):
        return con
    if isinstance(con, duckdb.DuckDBPyConnection):
        return DuckDBWarehouse(con)
    raise TypeError(f"not a warehouse connection: {type(con).__name__}")
