"""Right to erasure (GDPR Art. 17): a person asked to be forgotten.

A request is recorded with a hash of who asked, never the identifier in clear. Processing it:
1. finds the person's profile, source records and (non-shared) email addresses;
2. deletes them in every destination a sync ever confirmed them to; if any destination fails,
   nothing in the warehouse is touched and the next run retries;
3. in one transaction: deletes their rows from every raw table (and quarantine), every row of
   every other table that names their profile, records or emails (snapshots, incremental models,
   sync state included), pseudonymizes the record of processing (who was sent what becomes "an
   erased person"), and adds their email and record hashes to the suppression list, which the
   loader consults so they do not come back with the next export;
4. the caller rebuilds the dbt models, then `verify` scans every table by the same hashes.

All matching is on SHA-256 hashes (the warehouse's sha256 equals hashlib's), so the request log, the
suppression list and the Dagster run that processes it hold nothing in clear.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pandas as pd

from cdp.core.sql import quote, table_exists, utc_now
from cdp.core.warehouse import Warehouse, as_warehouse
from cdp.identity.matching import pairs_deleted
from cdp.ingest.sources import EMAIL_TOKEN, Table, declarations, tables
from cdp.ingest.sources import table as declared_table
from cdp.ingest.suppression import PRIVACY_SCHEMA, Suppressions, digest, ensure_privacy_schema

REQUESTS = f"{PRIVACY_SCHEMA}.erasure_requests"
ACTIONS = f"{PRIVACY_SCHEMA}.erasure_actions"
# The record of processing keeps that something was sent, not to whom.
PSEUDONYMIZED = {("reverse_etl", "sync_deliveries"): ("record_key", "destination_id")}
OPEN_STATUSES = ("pending", "destinations_failed")


class ErasureError(RuntimeError):
    """An erasure could not be completed; the message says where and why."""


def ensure_tables(con) -> None:
    ensure_privacy_schema(con)
    con.execute(f"""create table if not exists {REQUESTS} (
        request_id varchar primary key, requested_at timestamp, requested_by varchar,
        reason varchar, subject_kind varchar, subject_sha256 varchar, profile_sha256 varchar,
        status varchar, rows_deleted bigint, rows_pseudonymized bigint,
        destination_deletes bigint, remaining_rows bigint, erased_at timestamp,
        verified_at timestamp, message varchar)""")
    con.execute(f"""create table if not exists {ACTIONS} (
        request_id varchar, happened_at timestamp, system varchar, target varchar,
        action varchar, rows bigint, ok boolean, message varchar)""")


def normalized_subject(email: str | None, profile_id: str | None) -> tuple[str, str]:
    if bool(email) == bool(profile_id):
        raise ValueError("give exactly one of an email address or a profile id")
    if email:
        value = email.strip().lower()
        if "@" not in value:
            raise ValueError(f"{email!r} is not an email address")
        return "email", value
    return "profile_id", profile_id.strip()


def request_erasure(
    con,
    *,
    email: str | None = None,
    profile_id: str | None = None,
    requested_by: str,
    reason: str = "data subject request (GDPR Art. 17)",
) -> str:
    """Record an erasure request (hash only) and return its id. A subject with an open request
    gets that request back, so asking twice does not process twice."""
    kind, value = normalized_subject(email, profile_id)
    ensure_tables(con)
    subject = digest(value)
    existing = con.execute(
        f"select request_id from {REQUESTS} where subject_sha256 = ? and status in {OPEN_STATUSES}",
        [subject],
    ).fetchall()
    if existing:
        return existing[0][0]
    request_id = "er_" + uuid.uuid4().hex[:16]
    con.execute(
        f"""insert into {REQUESTS} (request_id, requested_at, requested_by, reason,
            subject_kind, subject_sha256, status) values (?, ?, ?, ?, ?, ?, 'pending')""",
        [request_id, utc_now(), requested_by, reason, kind, subject],
    )
    return request_id


@dataclass
class Subject:
    """Who is to be forgotten, as hashes; the profile id in clear only while processing."""

    request_id: str
    profile_id: str | None
    email_hashes: set[str] = field(default_factory=set)
    record_hashes: set[str] = field(default_factory=set)
    # sync name -> record key -> identifier of the person's rows in that sync's model
    sync_records: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @property
    def exact_hashes(self) -> set[str]:
        """Values that identify the person wherever they stand: profile id, record keys and the
        keys syncs deliver them under."""
        extra = {digest(self.profile_id)} if self.profile_id else set()
        sync_keys = {digest(key) for keys in self.sync_records.values() for key in keys}
        return self.record_hashes | sync_keys | extra


def find_subject(con: Warehouse, request_id: str) -> Subject:
    con = as_warehouse(con)
    kind, subject_hash = con.execute(
        f"select subject_kind, subject_sha256 from {REQUESTS} where request_id = ?", [request_id]
    ).fetchall()[0]
    profile_ids: list[str] = []
    if table_exists(con, "marts", "customers"):
        if kind == "profile_id":
            sql = f"select profile_id from marts.customers where {con.sha256('profile_id')} = ?"
        else:
            sql = f"""select distinct profile_id from marts.customer_identifiers
                where identifier_kind = 'email' and {con.sha256("identifier_value")} = ?"""
        profile_ids = [r[0] for r in con.execute(sql, [subject_hash]).fetchall()]
    if len(profile_ids) > 1:
        raise ErasureError(
            f"request {request_id}: the email address belongs to {len(profile_ids)} profiles "
            "(a shared address); erase by --profile-id instead"
        )
    subject = Subject(request_id, profile_ids[0] if profile_ids else None)
    if kind == "email":
        subject.email_hashes.add(subject_hash)
    if subject.profile_id:
        pid = [subject.profile_id]
        subject.record_hashes |= {
            digest(r[0])
            for r in con.execute(
                "select source || ':' || source_record_id from marts.customer_profile_records"
                " where profile_id = ?",
                pid,
            ).fetchall()
        }
        # The keys syncs deliver them under, some their own (a lead notification per rep): the
        # destinations, the delivery log and the sync state name the person by those.
        from reverse_etl.config import load_syncs_reporting

        subject.sync_records = {
            sync.name: sync_record_keys(con, sync, subject.profile_id)
            for sync in load_syncs_reporting()[0].values()
        }
        # Shared and blocklisted addresses (info@, household mailboxes) are not theirs alone.
        subject.email_hashes |= {
            digest(r[0])
            for r in con.execute(
                """select identifier_value from marts.customer_identifiers
                where profile_id = ? and identifier_kind = 'email'
                    and not is_blocklisted and not is_shared""",
                pid,
            ).fetchall()
        }
    return subject


# -- matching: one place for the SQL that decides whether a row belongs to the subject


def _register_hashes(con, subject: Subject) -> None:
    """Prepare this session for scanning tables by the subject's hashes."""
    con.prepare_wide_scans()
    for name, values in (
        ("erasure_exact", subject.exact_hashes),
        ("erasure_emails", subject.email_hashes),
        ("erasure_records", subject.record_hashes),
    ):
        con.replace_temp_table(name, "select cast(null as varchar) as h where false")
        if values:
            con.executemany(f"insert into {name} values (?)", [[v] for v in sorted(values)])


def _names_subject(con: Warehouse, column: str) -> str:
    """A text column holds one of the subject's ids exactly, or one of their emails anywhere."""
    col = quote(column)
    emails = con.any_match_hash_in(f"lower({col})", EMAIL_TOKEN, "select h from erasure_emails")
    return (
        f"({con.sha256(col)} in (select h from erasure_exact) or "
        f"(strpos({col}, '@') > 0 and {emails}))"
    )


def _raw_links(con: Warehouse, table: Table) -> list[str]:
    """A raw row is the subject's through its person-link columns or its parent row."""
    conditions = [
        f"{con.sha256(link)} in (select h from erasure_records)"
        for link in (
            f"'{source}:' || trim({quote(column)})" for column, source in table.person_links
        )
    ]
    if table.parent:
        column, parent_key, parent_column = table.parent
        parent = declared_table(parent_key)
        parent_match = " or ".join(
            _raw_links(con, parent) + _text_conditions(con, parent.column_names)
        )
        conditions.append(
            f"{quote(column)} in (select {quote(parent_column)} from raw.{quote(parent_key)}"
            f" where {parent_match})"
        )
    return conditions


def _text_conditions(con: Warehouse, columns: list[str]) -> list[str]:
    return [_names_subject(con, c) for c in columns]


def _quarantined_ids(con: Warehouse) -> str:
    """A quarantined line names one of the subject's source records ("source:id")."""
    return con.any_match_hash_in(
        "raw_text", "[A-Za-z0-9_-]+", "select h from erasure_records", prefix="source || ':' || "
    )


def _subject_rows(con: Warehouse, schema: str, table: str) -> str | None:
    """The WHERE condition selecting the subject's rows of one table, or None."""
    if schema == "raw" and table in declarations().by_key:
        source_table = declarations().by_key[table]
        conditions = _raw_links(con, source_table) + _text_conditions(
            con, source_table.column_names
        )
    else:
        text_columns = [
            r[0]
            for r in con.execute(
                """select column_name from information_schema.columns
                where table_schema = ? and table_name = ?
                    and data_type in (select unnest(?))""",
                [schema, table, list(con.text_type_names())],
            ).fetchall()
        ]
        conditions = _text_conditions(con, text_columns)
        if (schema, table) == ("raw", "quarantine"):
            conditions.append(_quarantined_ids(con))
    return " or ".join(conditions) or None


def _warehouse_tables(con: Warehouse) -> list[tuple[str, str]]:
    """Every base table of the CDP but the privacy schema's own (hashes only); raw children
    first, so a child finds its parent row before the parent goes."""
    rows = [
        (schema, table)
        for schema, table in con.execute(
            """select table_schema, table_name from information_schema.tables
            where table_type = 'BASE TABLE' and table_schema <> ?
            order by table_schema, table_name""",
            [PRIVACY_SCHEMA],
        ).fetchall()
        if con.holds_cdp_data(schema)
    ]
    has_parent = {t.key for t in tables() if t.parent}
    return sorted(rows, key=lambda r: (r[0] != "raw", r[1] not in has_parent, r))


# -- processing


@dataclass
class ErasureResult:
    request_id: str
    status: str
    rows_deleted: int = 0
    rows_pseudonymized: int = 0
    destination_deletes: int = 0
    collected_events_deleted: int = 0
    message: str = ""


def _log(con, request_id, system, target, action, rows, ok=True, message=""):
    con.execute(
        f"insert into {ACTIONS} values (?, ?, ?, ?, ?, ?, ?, ?)",
        [request_id, utc_now(), system, target, action, rows, ok, message[:2000]],
    )


def sync_record_keys(con, sync, profile_id: str) -> dict[str, str | None]:
    """Record key -> identifier of the person's rows in a sync's model: by primary key when it
    is the profile id (the key even when the row is gone), else through the model's profile_id
    column (none without one)."""
    from reverse_etl.engine import relation

    by_profile = sync.primary_key == "profile_id"
    keys: dict[str, str | None] = {profile_id: None} if by_profile else {}
    source = relation(sync.source)
    if not table_exists(con, *sync.source.split(".")):
        return keys
    columns = [d[0] for d in con.execute(f"select * from {source} limit 0").description]
    if not by_profile and "profile_id" not in columns:
        return keys
    pk, ident = quote(sync.primary_key), quote(sync.identifier.source)
    by = pk if by_profile else "profile_id"
    keys.update(
        con.execute(
            f"select cast({pk} as varchar), cast({ident} as varchar) from {source} "
            f"where cast({by} as varchar) = ?",
            [profile_id],
        ).fetchall()
    )
    return keys


def _held_records(con, sync, subject: Subject) -> list[tuple[str, str | None, str | None]]:
    """(record key, identifier, destination id) of every record of the subject that the sync's
    destination confirmed holding."""
    identifiers = subject.sync_records.get(sync.name, {})
    if not identifiers:
        return []
    held = con.execute(
        "select record_key, destination_id from reverse_etl.sync_state "
        f"where sync_name = ? and record_key in ({', '.join('?' * len(identifiers))})",
        [sync.name, *identifiers],
    ).fetchall()
    return [(key, identifiers.get(key), destination_id) for key, destination_id in held]


def _erase_in_destinations(con, subject: Subject, destination_for: Callable) -> tuple[int, list]:
    """Delete the subject wherever a sync's state says a destination holds them. Confirmed
    deletions drop the sync state at once, so a retry only repeats what failed."""
    from cdp.core.http import DeliveryError
    from reverse_etl.config import load_syncs_reporting
    from reverse_etl.destinations import Record

    if not subject.profile_id or not table_exists(con, "reverse_etl", "sync_state"):
        return 0, []
    syncs, invalid = load_syncs_reporting()
    # What an invalid definition delivered cannot be found: the request stays open until fixed.
    deleted, failures = 0, [f"invalid sync definition: {problem}" for problem in invalid]
    for sync in syncs.values():
        for record_key, identifier, destination_id in _held_records(con, sync, subject):
            record = Record(record_key, identifier or destination_id or "", {}, destination_id)
            target = f"{sync.destination}:{sync.object}"
            try:
                [outcome] = destination_for(sync).erase([record])
                ok, message = outcome.ok, outcome.message
            except (DeliveryError, TypeError, ValueError) as exc:
                ok, message = False, f"{type(exc).__name__}: {exc}"
            _log(con, subject.request_id, sync.name, target, "destination_delete", 1, ok, message)
            if ok:
                deleted += 1
                con.execute(
                    "delete from reverse_etl.sync_state where sync_name = ? and record_key = ?",
                    [sync.name, record_key],
                )
            else:
                failures.append(f"{sync.name} ({target}): {message}")
    return deleted, failures


def _erase_in_warehouse(con, subject: Subject) -> tuple[int, int]:
    deleted = pseudonymized = 0
    marker = f"erased:{subject.request_id}"
    for (schema, table), columns in PSEUDONYMIZED.items():
        if table_exists(con, schema, table):
            where = _subject_rows(con, schema, table)
            sets = ", ".join(
                f"{quote(c)} = {'?' if i == 0 else 'null'}" for i, c in enumerate(columns)
            )
            count = con.affected(
                f"update {quote(schema)}.{quote(table)} set {sets} where {where}", [marker]
            )
            pseudonymized += count
            if count:
                _log(con, subject.request_id, f"{schema}.{table}", marker, "pseudonymized", count)
    for schema, table in _warehouse_tables(con):
        where = _subject_rows(con, schema, table)
        if not where:
            continue
        count = con.affected(f"delete from {quote(schema)}.{quote(table)} where {where}")
        if count:
            deleted += count
            pairs_deleted(con, schema, table, count)
            _log(con, subject.request_id, f"{schema}.{table}", "", "deleted", count)
    now = utc_now()
    suppress = [("email", h) for h in subject.email_hashes] + [
        ("record", h) for h in subject.record_hashes
    ]
    if suppress:
        frame = pd.DataFrame(suppress, columns=["identifier_kind", "value_sha256"])
        con.register("new_suppressions", frame)
        con.execute(
            f"""insert into {PRIVACY_SCHEMA}.suppressions
            select identifier_kind, value_sha256, ?, ? from new_suppressions
            on conflict do nothing""",
            [subject.request_id, now],
        )
        con.unregister("new_suppressions")
        _log(con, subject.request_id, f"{PRIVACY_SCHEMA}.suppressions", "", "suppressed",
             len(suppress))  # fmt: skip
    return deleted, pseudonymized


def process_request(con, request_id: str, destination_for: Callable | None = None) -> ErasureResult:
    """Erase one requested person everywhere but the dbt models, which the caller rebuilds."""
    from reverse_etl.engine import build_destination

    con = as_warehouse(con)
    ensure_tables(con)
    subject = find_subject(con, request_id)
    result = ErasureResult(request_id, "pending")
    result.destination_deletes, failures = _erase_in_destinations(
        con, subject, destination_for or build_destination
    )
    # Counted at once: a later step may fail, the destinations' deletions stand. A request
    # stays open (pending) until the warehouse transaction below marks it erased.
    result.message = "; ".join(failures)
    result.status = "destinations_failed" if failures else "pending"
    con.execute(
        f"update {REQUESTS} set status = ?, message = ?, destination_deletes = "
        "coalesce(destination_deletes, 0) + ? where request_id = ?",
        [result.status, result.message, result.destination_deletes, request_id],
    )
    if failures:
        return result
    _register_hashes(con, subject)
    con.execute("begin transaction")
    try:
        result.rows_deleted, result.rows_pseudonymized = _erase_in_warehouse(con, subject)
        con.execute(
            f"""update {REQUESTS} set status = 'erased', profile_sha256 = ?, rows_deleted = ?,
                rows_pseudonymized = ?, erased_at = ?, message = ? where request_id = ?""",
            [
                digest(subject.profile_id) if subject.profile_id else None,
                result.rows_deleted,
                result.rows_pseudonymized,
                utc_now(),
                "" if subject.profile_id else "no profile found; raw rows and suppression only",
                request_id,
            ],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    result.status = "erased"
    # Write the deletions out so freed blocks are reused rather than kept as history.
    con.checkpoint()
    result.collected_events_deleted = _erase_in_collector_log(con, request_id)
    _erase_in_profile_store(con, subject)
    return result


def _erase_in_profile_store(con, subject: Subject) -> None:
    """The profile and what the collector put in the store about them, whatever the syncs'
    state says (a visitor the batch never knew has no sync state)."""
    from cdp.realtime.live import RECORD_SOURCES, forget
    from cdp.realtime.store import describe_store, open_store

    def belongs(identifier: str) -> bool:
        kind, _, value = identifier.partition(":")
        if kind == "profile_id":
            return value == subject.profile_id
        if kind == "email":
            return digest(value) in subject.email_hashes
        source = RECORD_SOURCES.get(kind)
        return source is not None and digest(f"{source}:{value}") in subject.record_hashes

    store = None
    try:
        store = open_store()
        if subject.profile_id:
            store.delete([subject.profile_id])
        overlays = forget(store, belongs)
    except Exception as exc:  # the store is a copy the next sync rewrites: say so, go on
        _log(con, subject.request_id, "profile store", describe_store(), "deleted", 0, False,
             str(exc).splitlines()[0] if str(exc) else type(exc).__name__)  # fmt: skip
        return
    finally:
        if store is not None:
            store.close()
    _log(con, subject.request_id, "profile store", describe_store(), "deleted", overlays)


def _erase_in_collector_log(con, request_id: str) -> int:
    """The person's events the collector landed and the loader has not (or has) read: the
    segments are the CDP's own copy, so they are rewritten without them."""
    from cdp.core.config import landing_path
    from cdp.realtime.collector.app import web_events_landing
    from cdp.realtime.collector.log import scrub_landed

    suppressions = Suppressions.read(con)
    table = declared_table("web__events")

    def belongs(row: dict) -> bool:
        as_exported = {
            k: v if v is None or isinstance(v, str) else orjson.dumps(v).decode()
            for k, v in row.items()
        }
        return suppressions.reason(table, as_exported) is not None

    landed = web_events_landing(Path(landing_path()))
    removed = scrub_landed(landed, belongs, same_person=("anonymous_id", "user_id"))
    if removed:
        _log(con, request_id, "collector", "web events segments", "deleted", removed)
    return removed


def open_requests(con) -> list[str]:
    if not table_exists(con, PRIVACY_SCHEMA, "erasure_requests"):
        return []
    return [
        r[0]
        for r in con.execute(
            f"select request_id from {REQUESTS} where status in {OPEN_STATUSES}"
            " order by requested_at"
        ).fetchall()
    ]


def verify(con, request_id: str) -> dict[str, int]:
    """Rows in any table that still name the person (by the request's hashes); an empty result
    marks the request verified."""
    con = as_warehouse(con)
    subject = Subject(request_id, None)
    for kind, value in con.execute(
        f"select identifier_kind, value_sha256 from {PRIVACY_SCHEMA}.suppressions"
        " where request_id = ?",
        [request_id],
    ).fetchall():
        (subject.email_hashes if kind == "email" else subject.record_hashes).add(value)
    profile_hash = con.execute(
        f"select profile_sha256 from {REQUESTS} where request_id = ?", [request_id]
    ).fetchall()[0][0]
    _register_hashes(con, subject)
    if profile_hash:
        con.execute("insert into erasure_exact values (?)", [profile_hash])
    remaining = {}
    for schema, table in _warehouse_tables(con):
        where = _subject_rows(con, schema, table)
        if not where:
            continue
        count = con.execute(
            f"select count(*) from {quote(schema)}.{quote(table)} where {where}"
        ).fetchall()[0][0]
        if count:
            remaining[f"{schema}.{table}"] = count
    con.execute(
        f"""update {REQUESTS} set status = ?, remaining_rows = ?, verified_at = ?
        where request_id = ?""",
        [
            "verified" if not remaining else "incomplete",
            sum(remaining.values()),
            utc_now(),
            request_id,
        ],
    )
    return remaining
