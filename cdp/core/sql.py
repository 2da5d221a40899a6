"""SQL helpers every layer uses: quoting identifiers, the warehouse's notion of now, rows as
dicts, whether a table exists."""

from __future__ import annotations

import datetime as dt

from cdp.core.warehouse import as_warehouse

RAW_SCHEMA = "raw"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


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
