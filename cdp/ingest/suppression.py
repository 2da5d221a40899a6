"""The suppression list: people who asked to be erased, kept as SHA-256 hashes of what identifies
them (email addresses and source record keys), so the loader can keep them from coming back with
the next export without the CDP holding their data in clear."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from cdp.core.sql import table_exists
from cdp.ingest.sources import EMAIL_TOKEN, Table

PRIVACY_SCHEMA = "privacy"
_EMAIL = re.compile(EMAIL_TOKEN)


def digest(value: str) -> str:
    """The hash every suppression and erasure lookup uses (DuckDB's sha256 gives the same)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def emails_in(text: str | None) -> list[str]:
    return _EMAIL.findall(text.lower()) if text else []


def ensure_privacy_schema(con) -> None:
    con.execute(f"create schema if not exists {PRIVACY_SCHEMA}")
    con.execute(f"""create table if not exists {PRIVACY_SCHEMA}.suppressions (
        identifier_kind varchar, value_sha256 varchar, request_id varchar, added_at timestamp,
        primary key (identifier_kind, value_sha256))""")


@dataclass
class Suppressions:
    """Hashes of suppressed emails and record keys ("source:id"), read once per load."""

    emails: set[str] = field(default_factory=set)
    records: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, con) -> Suppressions:
        found = cls()
        if table_exists(con, PRIVACY_SCHEMA, "suppressions"):
            for kind, value in con.execute(
                f"select identifier_kind, value_sha256 from {PRIVACY_SCHEMA}.suppressions"
            ).fetchall():
                (found.emails if kind == "email" else found.records).add(value)
        return found

    def __bool__(self) -> bool:
        return bool(self.emails or self.records)

    def reason(self, table: Table, row: dict[str, str | None]) -> str | None:
        """Why this row belongs to a suppressed person, or None."""
        for column, source in table.person_links:
            value = row.get(column)
            if value and digest(f"{source}:{value.strip()}") in self.records:
                return f"{column} is a suppressed {source} record"
        for column in table.email_columns:
            if any(digest(e) in self.emails for e in emails_in(row.get(column))):
                return f"{column} holds a suppressed email address"
        return None
