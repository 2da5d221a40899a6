"""The person tables of systems with `staging: declared` (see cdp.ingest.sources for the format):
adding such a system is one YAML file, no SQL and no Python. The loader reads their files like
every other table; then `publish()` writes four relations into schema `raw` that the dbt
sources `declared.*` read:

- `declared__person_records`: one row per record of every person table, columns by role;
- `declared__person_identifiers`: the values of columns mapped to identifier kinds;
- `declared__identifier_kinds`: the custom kinds with their normalization and merge rules;
- `declared__consent_statements`: what the consent columns grant or withdraw, per record.

See docs/sources.md for the format.
"""

from __future__ import annotations

from pathlib import Path

from cdp.core.sql import RAW_SCHEMA, quote
from cdp.core.warehouse import as_warehouse
from cdp.ingest.load import ensure_schema, raw_relation
from cdp.ingest.sources import PERSON_ROLES, SourceSpec, TableSpec, as_table, read_source

PERSON_RECORDS = "declared__person_records"
PERSON_IDENTIFIERS = "declared__person_identifiers"
IDENTIFIER_KINDS = "declared__identifier_kinds"
CONSENT_STATEMENTS = "declared__consent_statements"
# The names the dbt sources `declared.*` give them.
DECLARED_RELATIONS = (
    "person_records",
    "person_identifiers",
    "identifier_kinds",
    "consent_statements",
)

# ---------------------------------------------------------------------------------------------
# The relations dbt reads


def _text(expression: str) -> str:
    return f"cast({expression} as varchar)"


def _record_id_sql(source: SourceSpec, spec: TableSpec) -> str:
    """The record's id as text; prefixed by its table when the system has several person
    tables, whose ids need not be unique across them."""
    record_id = quote(spec.column_for("record_id").name)
    if sum(t.entity == "person" for t in source.tables) > 1:
        record_id = f"'{spec.name}:' || {record_id}"
    return _text(record_id)


def _person_select(source: SourceSpec, spec: TableSpec) -> str:
    table = as_table(source, spec)
    columns = [
        f"'{source.system}' as source",
        f"'{spec.name}' as source_table",
        f"{_record_id_sql(source, spec)} as source_record_id",
    ]
    for role in PERSON_ROLES:
        column = spec.column_for(role)
        columns.append(f"{_text(quote(column.name)) if column else 'null'} as {role}")
    country = spec.default_country or source.default_country
    columns += [
        f"{_text(repr(country)) if country else 'null'} as default_country",
        f"{'true' if spec.one_record_per_person else 'false'} as is_one_record_per_person",
        '"_loaded_at" as loaded_at',
    ]
    return f"select {', '.join(columns)} from {raw_relation(table)}"


def _identifier_selects(source: SourceSpec, spec: TableSpec) -> list[str]:
    table = as_table(source, spec)
    return [
        f"select '{source.system}' as source, {_record_id_sql(source, spec)} "
        "as source_record_id, "
        f"'{column.identifier_kind}' as identifier_kind, {_text(quote(column.name))} "
        f'as identifier_value, "_loaded_at" as loaded_at from {raw_relation(table)} '
        f"where {quote(column.name)} is not null"
        for column in spec.columns
        if column.role == "identifier"
    ]


def _consent_selects(source: SourceSpec, spec: TableSpec) -> list[str]:
    """One statement per record and consent column: granted when true, withdrawn when false,
    dated by the table's consent_at, updated_at or created_at column."""
    table = as_table(source, spec)
    dated_by = next(
        (
            spec.column_for(r)
            for r in ("consent_at", "updated_at", "created_at")
            if spec.column_for(r)
        ),
        None,
    )
    stated_at = _text(quote(dated_by.name)) if dated_by else "cast(null as varchar)"
    return [
        f"select '{source.system}' as source, {_record_id_sql(source, spec)} as source_record_id, "
        f"'{column.consent.purpose}' as purpose, '{column.consent.channel}' as channel, "
        f"{_text(quote(column.name))} as consent_value, {stated_at} as stated_at, "
        f"'{spec.name}.{column.name}' as statement, \"_loaded_at\" as loaded_at "
        f"from {raw_relation(table)} where {quote(column.name)} is not null"
        for column in spec.columns
        if column.role == "consent"
    ]


_EMPTY_RECORDS = (
    "select "
    + ", ".join(
        f"cast(null as varchar) as {c}"
        for c in ("source", "source_table", "source_record_id", *PERSON_ROLES, "default_country")
    )
    + ", false as is_one_record_per_person, cast(null as timestamp) as loaded_at where false"
)
_EMPTY_IDENTIFIERS = (
    "select cast(null as varchar) as source, cast(null as varchar) as source_record_id, "
    "cast(null as varchar) as identifier_kind, cast(null as varchar) as identifier_value, "
    "cast(null as timestamp) as loaded_at where false"
)
_EMPTY_CONSENTS = (
    "select "
    + ", ".join(
        f"cast(null as varchar) as {c}"
        for c in (
            "source", "source_record_id", "purpose", "channel", "consent_value", "stated_at",
            "statement",
        )
    )
    + ", cast(null as timestamp) as loaded_at where false"
)  # fmt: skip


def publish(con, sources: list[SourceSpec]) -> dict[str, int]:
    """(Re)write the four relations dbt reads from the declarations and the loaded raw
    tables; returns the person tables and identifier kinds published."""
    con = as_warehouse(con)
    ensure_schema(con)
    sources = [src for src in sources if src.staging == "declared"]
    person = [(src, t) for src in sources for t in src.tables if t.entity == "person"]
    for src, spec in person:
        ensure_schema(con, as_table(src, spec))
    records = " union all ".join(_person_select(src, t) for src, t in person) or _EMPTY_RECORDS
    identifiers = " union all ".join(
        q for src, t in person for q in _identifier_selects(src, t)
    ) or (_EMPTY_IDENTIFIERS)
    consents = " union all ".join(q for src, t in person for q in _consent_selects(src, t)) or (
        _EMPTY_CONSENTS
    )
    raw = quote(RAW_SCHEMA)
    con.execute(f"drop view if exists {raw}.{quote(PERSON_RECORDS)}")
    con.execute(f"create view {raw}.{quote(PERSON_RECORDS)} as {records}")
    con.execute(f"drop view if exists {raw}.{quote(PERSON_IDENTIFIERS)}")
    con.execute(f"create view {raw}.{quote(PERSON_IDENTIFIERS)} as {identifiers}")
    con.execute(f"drop view if exists {raw}.{quote(CONSENT_STATEMENTS)}")
    con.execute(f"create view {raw}.{quote(CONSENT_STATEMENTS)} as {consents}")
    kinds = [(src.system, k) for src in sources for k in src.identifier_kinds]
    con.execute(f"drop table if exists {raw}.{quote(IDENTIFIER_KINDS)}")
    con.execute(
        f"create table {raw}.{quote(IDENTIFIER_KINDS)} (source varchar, identifier_kind "
        "varchar, normalization varchar, is_merge_key boolean, max_per_profile integer, "
        "priority integer, description varchar)"
    )
    if kinds:
        con.executemany(
            f"insert into {raw}.{quote(IDENTIFIER_KINDS)} values (?, ?, ?, ?, ?, ?, ?)",
            [
                [system, k.kind, k.normalize, k.merge, k.max_per_profile, k.priority, k.description]
                for system, k in kinds
            ],
        )
    return {"person_tables": len(person), "identifier_kinds": len(kinds)}


def check(path: Path, sample: Path | None = None) -> dict:
    """Validate a declaration and read a sample file of each table (the given one, or the
    first file its path pattern finds under the landing folder) into a throwaway in-memory
    warehouse, as the loader would. Returns what would load, per table."""
    import duckdb

    from cdp.core.config import landing_path
    from cdp.core.warehouse import DuckDBWarehouse
    from cdp.ingest.load import LoadResult, landing_files, load_file

    spec = read_source(path)
    report: dict = {"system": spec.system, "tables": {}}
    for table_spec, table in zip(spec.tables, spec.as_tables(), strict=True):
        files = [Path(sample)] if sample else landing_files(table, Path(landing_path()))[:1]
        entry: dict = {"entity": table_spec.entity, "files": [str(f) for f in files]}
        report["tables"][table.name] = entry
        if not files:
            entry["note"] = f"no file matches {table.landing_glob} under {landing_path()}"
            continue
        con = DuckDBWarehouse(duckdb.connect())
        ensure_schema(con, table)
        result = LoadResult(table.key)
        load_file(con, table, files[0], result)
        entry.update(
            rows_read=result.rows_read,
            rows_loaded=result.rows_new,
            rows_quarantined=result.rows_quarantined,
            values_invalid=result.values_invalid,
            rejected=result.files_rejected,
            problems=result.problems(),
            invalid_by_column=dict(
                con.execute(
                    f"select key, count(*) from (select unnest(json_keys(_invalid_values)) as key "
                    f"from {raw_relation(table)} where _invalid_values is not null) group by 1 "
                    "order by 1"
                ).fetchall()
            ),
            quarantine_examples=con.execute(
                'select line_number, reason from raw."quarantine" order by line_number limit 5'
            ).fetchall(),
            roles={c.name: c.role for c in table_spec.columns if c.role},
            sample_rows=[
                dict(zip([d[0] for d in cursor.description], row, strict=True))
                for cursor in [
                    con.execute(
                        "select "
                        + ", ".join(quote(c) for c in table.column_names)
                        + f" from {raw_relation(table)} limit 3"
                    )
                ]
                for row in cursor.fetchall()
            ],
        )
        con.close()
    return report
