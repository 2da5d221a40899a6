"""Sources declared in YAML (`sources/*.yml`, or the folder `CDP_SOURCES_DIR` names): adding a
system is one file, no SQL and no Python.

A declaration names where the files land and their format, each column's type and parse
formats, and the canonical role of person columns (names, emails, phones, address parts, birth
date, ids). The loader reads the files with the same code as the built-in systems; then
`publish()` writes three relations into schema `raw` that the dbt sources `declared.*` read:

- `declared__person_records`: one row per record of every person table, columns by role;
- `declared__person_identifiers`: the values of columns mapped to identifier kinds;
- `declared__identifier_kinds`: the custom kinds with their normalization and merge rules.

See docs/sources.md for the format.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdp import sources as s
from cdp.config import PROJECT_ROOT, load_yaml_model
from cdp.load import RAW_SCHEMA, ensure_schema, quote, raw_relation
from cdp.warehouse import as_warehouse

PERSON_RECORDS = "declared__person_records"
PERSON_IDENTIFIERS = "declared__person_identifiers"
IDENTIFIER_KINDS = "declared__identifier_kinds"
# The names the dbt sources `declared.*` give them.
DECLARED_RELATIONS = ("person_records", "person_identifiers", "identifier_kinds")

# Canonical person roles, in the column order of declared__person_records. Each may be mapped
# by at most one column of a table; `identifier` may be mapped by many (each with its kind).
PERSON_ROLES = (
    "given_name",
    "middle_name",
    "family_name",
    "full_name",
    "email",
    "phone",
    "mobile_phone",
    "street",
    "house_number",
    "address_line_2",
    "postal_code",
    "city",
    "region",
    "country",
    "birth_date",
    "gender",
    "company",
    "created_at",
    "updated_at",
)
Role = Literal[(*PERSON_ROLES, "record_id", "identifier")]
ColumnType = Literal["id", "text", "int", "decimal", "bool", "json", "date", "timestamp"]
_KIND = {
    "id": s.ID,
    "text": s.TEXT,
    "int": s.INT,
    "decimal": s.DECIMAL,
    "bool": s.BOOL,
    "json": s.JSON,
    "date": s.DATE,
    "timestamp": s.TIMESTAMP,
}
BUILTIN_KINDS = frozenset({"email", "phone"})
_NAME = r"^[a-z][a-z0-9_]*$"


class SourceError(ValueError):
    """A source declaration that cannot be used; the message names the file and field."""


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: ColumnType = "text"
    format: str | list[str] | None = Field(
        None, description="strptime format(s) for date and timestamp columns"
    )
    required: bool | None = None
    role: Role | None = None
    identifier_kind: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.format and self.type not in ("date", "timestamp"):
            raise ValueError(f"column {self.name!r}: format is for date and timestamp columns")
        if self.role == "identifier" and not self.identifier_kind:
            raise ValueError(f"column {self.name!r}: role identifier needs identifier_kind")
        if self.identifier_kind and self.role != "identifier":
            raise ValueError(f"column {self.name!r}: identifier_kind needs role: identifier")
        return self

    @property
    def formats(self) -> tuple[str, ...]:
        if self.format is None:
            return ()
        return (self.format,) if isinstance(self.format, str) else tuple(self.format)


class TableSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    entity: Literal["person", "other"] = "other"
    format: Literal["csv", "jsonl", "json", "parquet", "postgres"] = "csv"
    path: str | None = Field(None, description="glob under the landing folder")
    # format postgres: the environment variable with the DSN (never the DSN itself), the query,
    # and the column whose growing values load only what is new
    connection: str | None = Field(None, pattern=r"^[A-Z][A-Z0-9_]*$")
    query: str | None = None
    cursor: str | None = None
    delimiter: str = ","
    encoding: str = "auto"
    default_country: str | None = None
    # True when the system holds one record per person (a CRM, a shop's accounts): a value
    # seen on several of its records is then a shared identifier (household, group mailbox).
    one_record_per_person: bool = False
    description: str = ""
    columns: list[ColumnSpec]

    @model_validator(mode="after")
    def _postgres(self) -> TableSpec:
        if self.format == "postgres" and not (self.connection and self.query):
            raise ValueError(
                f"table {self.name!r}: format postgres needs connection (an environment "
                "variable holding the DSN) and query"
            )
        if self.cursor and self.cursor not in {c.name for c in self.columns}:
            raise ValueError(f"table {self.name!r}: cursor {self.cursor!r} is not a column")
        return self

    @model_validator(mode="after")
    def _roles(self) -> TableSpec:
        names = [c.name for c in self.columns]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"table {self.name!r}: column(s) declared twice: {', '.join(twice)}")
        roles = [c.role for c in self.columns if c.role and c.role != "identifier"]
        doubled = sorted({r for r in roles if roles.count(r) > 1})
        if doubled:
            raise ValueError(f"table {self.name!r}: role(s) mapped twice: {', '.join(doubled)}")
        if self.entity == "person" and "record_id" not in roles:
            raise ValueError(f"table {self.name!r}: a person table maps one column to record_id")
        return self

    def column_for(self, role: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.role == role), None)


class IdentifierKindSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(pattern=_NAME)
    # How values are compared: as given (trimmed), lower case, digits only, or letters and
    # digits only (upper case).
    normalize: Literal["trim", "lower", "digits", "alnum"] = "alnum"
    # A merge key links every record holding the value (after junk/shared checks); otherwise
    # the value is evidence for the probabilistic matcher only.
    merge: bool = False
    max_per_profile: int | None = Field(None, ge=1)
    priority: int = Field(50, ge=1)
    description: str = ""


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path
    system: str = Field(pattern=_NAME)
    description: str = ""
    default_country: str | None = None
    tables: list[TableSpec]
    identifier_kinds: list[IdentifierKindSpec] = []

    @field_validator("default_country")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Z]{2}$", value):
            raise ValueError("an ISO 3166-1 alpha-2 code such as DE or AU")
        return value

    @model_validator(mode="after")
    def _kinds_declared(self) -> SourceSpec:
        declared = {k.kind for k in self.identifier_kinds} | BUILTIN_KINDS
        for table in self.tables:
            for column in table.columns:
                if column.identifier_kind and column.identifier_kind not in declared:
                    raise ValueError(
                        f"table {table.name!r} column {column.name!r}: identifier_kind "
                        f"{column.identifier_kind!r} is not declared under identifier_kinds"
                    )
        return self

    @property
    def name(self) -> str:
        return self.system

    def as_tables(self) -> list[s.Table]:
        return [_as_table(self, t) for t in self.tables]


def _as_table(source: SourceSpec, spec: TableSpec) -> s.Table:
    return s.Table(
        source=source.system,
        name=spec.name,
        format=spec.format,
        columns=tuple(
            s.Column(
                c.name,
                _KIND[c.type],
                required=c.required if c.required is not None else c.role == "record_id",
                formats=c.formats,
            )
            for c in spec.columns
        ),
        description=spec.description or f"{source.system}.{spec.name}, declared in YAML.",
        delimiter=spec.delimiter,
        encoding=spec.encoding,
        path_glob=spec.path,
        connection_env=spec.connection,
        query=spec.query,
        cursor=spec.cursor,
        person_links=(
            ((spec.column_for("record_id").name, source.system),) if spec.entity == "person" else ()
        ),
        email_columns=tuple(c.name for c in spec.columns if c.role == "email"),
    )


def sources_dir() -> Path:
    value = os.environ.get("CDP_SOURCES_DIR")
    if not value:
        return PROJECT_ROOT / "sources"
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def read_source(path: Path) -> SourceSpec:
    """A declaration, validated; every problem raised as SourceError naming the file, the line
    and the field."""
    return load_yaml_model(Path(path), SourceSpec, SourceError, "source")


def read_sources(folder: Path | None = None) -> tuple[list[SourceSpec], list[str]]:
    """Every declaration of the folder, and one line per file that cannot be used (it is left
    out; the others still load)."""
    folder = folder or sources_dir()
    found: list[SourceSpec] = []
    problems: list[str] = []
    builtin = set(s.SOURCES)
    for path in sorted(Path(folder).glob("*.yml")) if Path(folder).is_dir() else []:
        try:
            spec = read_source(path)
        except SourceError as exc:
            problems.append(str(exc))
            continue
        if spec.system in builtin or spec.system in {f.system for f in found}:
            problems.append(f"{path}: system: {spec.system!r} is already used by another source")
            continue
        found.append(spec)
    return found, problems


def declared_tables(folder: Path | None = None) -> list[s.Table]:
    return [t for spec in read_sources(folder)[0] for t in spec.as_tables()]


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
    table = _as_table(source, spec)
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
    table = _as_table(source, spec)
    return [
        f"select '{source.system}' as source, {_record_id_sql(source, spec)} "
        "as source_record_id, "
        f"'{column.identifier_kind}' as identifier_kind, {_text(quote(column.name))} "
        f'as identifier_value, "_loaded_at" as loaded_at from {raw_relation(table)} '
        f"where {quote(column.name)} is not null"
        for column in spec.columns
        if column.role == "identifier"
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


def publish(con, sources: list[SourceSpec]) -> dict[str, int]:
    """(Re)write the three relations dbt reads from the declarations and the loaded raw
    tables; returns the person tables and identifier kinds published."""
    con = as_warehouse(con)
    ensure_schema(con)
    person = [(src, t) for src in sources for t in src.tables if t.entity == "person"]
    for src, spec in person:
        ensure_schema(con, _as_table(src, spec))
    records = " union all ".join(_person_select(src, t) for src, t in person) or _EMPTY_RECORDS
    identifiers = " union all ".join(
        q for src, t in person for q in _identifier_selects(src, t)
    ) or (_EMPTY_IDENTIFIERS)
    raw = quote(RAW_SCHEMA)
    con.execute(f"drop view if exists {raw}.{quote(PERSON_RECORDS)}")
    con.execute(f"create view {raw}.{quote(PERSON_RECORDS)} as {records}")
    con.execute(f"drop view if exists {raw}.{quote(PERSON_IDENTIFIERS)}")
    con.execute(f"create view {raw}.{quote(PERSON_IDENTIFIERS)} as {identifiers}")
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

    from cdp.config import landing_path
    from cdp.load import LoadResult, landing_files, load_file
    from cdp.warehouse import DuckDBWarehouse

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
