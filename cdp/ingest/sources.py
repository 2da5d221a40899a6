"""The source systems and their tables, declared in YAML: `sources/*.yml` in the project (the
eight demo systems and any system a team adds there) and, when set, the folder
`CDP_SOURCES_DIR` names. One declaration is used by the raw loader, the raw data-quality checks,
erasure and suppression, and (for systems with `staging: declared`) by the macro-driven staging
of person records, so a column is named in exactly one place.

A declaration names where the files land and their format, each column's type and parse
formats, whose person record a column identifies, data-quality checks, and the canonical role
of person columns (names, emails, phones, address parts, birth date, ids). See docs/sources.md.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdp.core.config import PROJECT_ROOT, load_yaml_model

# Column kinds the loader validates before a row may enter the raw schema.
ID = "id"  # required, non-empty
TEXT = "text"
INT = "int"
DECIMAL = "decimal"
BOOL = "bool"
JSON = "json"  # nested object, stored as JSON text
DATE = "date"
TIMESTAMP = "timestamp"

EMAIL_REGEX = r"^\s*[^@\s]+@[^@\s]+\.[A-Za-z]{2,}\s*$"
# An email address inside any text (a field, a JSON document, a raw line): the characters a
# normalized address may hold (the staging macro normalize_email), case-folded first.
EMAIL_TOKEN = r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = TEXT
    # A file without a required column is rejected; an optional one may be missing (null).
    # Ids are required unless said otherwise.
    required: bool | None = None
    # strptime formats tried in order for DATE and TIMESTAMP (ISO-8601 when none).
    formats: tuple[str, ...] = ()
    # DATE and TIMESTAMP: checked against the formats but stored as exported (a hand-written
    # staging model parses them), instead of rewritten as ISO-8601.
    as_exported: bool = False

    @property
    def is_required(self) -> bool:
        return self.kind == ID if self.required is None else self.required


@dataclass(frozen=True)
class Expectation:
    """A Great Expectations expectation run on the raw table as a Dagster asset check."""

    kind: str  # not_null | in_set | match_regex
    column: str
    value_set: tuple[str, ...] = ()
    regex: str = ""
    mostly: float = 1.0


@dataclass(frozen=True)
class Table:
    source: str
    name: str
    format: str  # csv | jsonl | json | parquet | postgres
    columns: tuple[Column, ...]
    description: str
    delimiter: str = ","
    expectations: tuple[Expectation, ...] = field(default_factory=tuple)
    # Whose rows these are, for erasure and suppression: (column, source) pairs whose value is
    # the id of a person record of that source (identity record key "source:value"), columns
    # that may hold email addresses, and for child rows the parent they belong to
    # (column, parent table key, parent column).
    person_links: tuple[tuple[str, str], ...] = ()
    email_columns: tuple[str, ...] = ()
    parent: tuple[str, str, str] | None = None
    # "auto": UTF-8, else Windows-1252 (a superset of Latin-1, what Excel writes in Europe).
    encoding: str = "auto"
    # Where its files land, relative to the landing folder (default <source>/<name>/*.<ext>).
    path_glob: str | None = None
    # format "postgres": the environment variable holding the database's DSN, the query, and
    # the column whose growing values make the load incremental.
    connection_env: str | None = None
    query: str | None = None
    cursor: str | None = None

    @property
    def key(self) -> str:
        return f"{self.source}__{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def extension(self) -> str:
        return self.format

    @property
    def landing_glob(self) -> str:
        return self.path_glob or f"{self.source}/{self.name}/*.{self.extension}"

    def accepted_values(self, column: str) -> tuple[str, ...]:
        """The values a check accepts for the column (empty when it has none)."""
        return next(
            (e.value_set for e in self.expectations if e.column == column and e.kind == "in_set"),
            (),
        )


# ---------------------------------------------------------------------------------------------
# The YAML format

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
# `identifier` and `consent` may be mapped by many columns of a table (each with its kind or
# purpose); `consent_at` dates the table's consent columns (else updated_at or created_at).
Role = Literal[(*PERSON_ROLES, "record_id", "identifier", "consent", "consent_at")]
MULTI_ROLES = ("identifier", "consent")
# The purposes customer_consents knows; syncs declare which they need.
CONSENT_PURPOSES = ("email_marketing", "personalization", "analytics", "sales_contact")
ColumnType = Literal["id", "text", "int", "decimal", "bool", "json", "date", "timestamp"]
BUILTIN_KINDS = frozenset({"email", "phone"})
_NAME = r"^[a-z][a-z0-9_]*$"
# Named patterns a `matches` check may use instead of a regular expression.
NAMED_PATTERNS = {"email": EMAIL_REGEX}


class SourceError(ValueError):
    """A source declaration that cannot be used; the message names the file and field."""


class CheckSpec(BaseModel):
    """A data-quality check on a raw column (a Great Expectations asset check in Dagster)."""

    model_config = ConfigDict(extra="forbid")

    not_null: bool = False
    accepted_values: list[str] | None = None
    matches: str | None = Field(None, description="a regular expression, or the name email")
    # The share of rows that must pass; below 1 the check warns instead of failing.
    mostly: float = Field(1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> CheckSpec:
        if sum((self.not_null, self.accepted_values is not None, self.matches is not None)) != 1:
            raise ValueError("a check is one of not_null, accepted_values or matches")
        if self.matches is not None and self.matches not in NAMED_PATTERNS:
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(f"matches: not a regular expression: {exc}") from None
        return self

    def expectation(self, column: str) -> Expectation:
        if self.not_null:
            return Expectation("not_null", column, mostly=self.mostly)
        if self.accepted_values is not None:
            return Expectation(
                "in_set", column, value_set=tuple(self.accepted_values), mostly=self.mostly
            )
        regex = NAMED_PATTERNS.get(self.matches, self.matches)
        return Expectation("match_regex", column, regex=regex, mostly=self.mostly)


class ConsentSpec(BaseModel):
    """What a consent column grants when true and withdraws when false."""

    model_config = ConfigDict(extra="forbid")

    purpose: Literal[CONSENT_PURPOSES]
    channel: Literal["email", "sms", "phone", "post", "web", "any"] = "email"


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: ColumnType = "text"
    format: str | list[str] | None = Field(
        None, description="strptime format(s) for date and timestamp columns"
    )
    # iso: dates and timestamps are stored as ISO-8601 text; as_exported: checked, stored as
    # the file has them (for a hand-written staging model that parses them).
    store: Literal["iso", "as_exported"] = "iso"
    required: bool | None = None
    role: Role | None = None
    identifier_kind: str | None = None
    consent: ConsentSpec | None = None
    # The value is the id of a person record of this system (for erasure and suppression); a
    # record_id column is one of its own system.
    person_of: str | None = Field(None, pattern=_NAME)
    # Text or JSON that may hold email addresses (found and erased by pattern).
    contains_email: bool = False
    checks: list[CheckSpec] = []
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.format and self.type not in ("date", "timestamp"):
            raise ValueError(f"column {self.name!r}: format is for date and timestamp columns")
        if self.store == "as_exported" and self.type not in ("date", "timestamp"):
            raise ValueError(f"column {self.name!r}: store is for date and timestamp columns")
        if self.role == "identifier" and not self.identifier_kind:
            raise ValueError(f"column {self.name!r}: role identifier needs identifier_kind")
        if self.identifier_kind and self.role != "identifier":
            raise ValueError(f"column {self.name!r}: identifier_kind needs role: identifier")
        if (self.role == "consent") != (self.consent is not None):
            raise ValueError(
                f"column {self.name!r}: role consent and consent (purpose) go together"
            )
        return self

    @property
    def is_key(self) -> bool:
        """Ids and the record id are required unless said otherwise."""
        return self.type == "id" or self.role == "record_id"

    @property
    def formats(self) -> tuple[str, ...]:
        if self.format is None:
            return ()
        return (self.format,) if isinstance(self.format, str) else tuple(self.format)


class ParentSpec(BaseModel):
    """A child table's rows belong to a parent table's rows (order lines to orders)."""

    model_config = ConfigDict(extra="forbid")

    table: str = Field(pattern=_NAME)
    column: str
    parent_column: str | None = None


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
    belongs_to: ParentSpec | None = None
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
        if self.belongs_to and self.belongs_to.column not in {c.name for c in self.columns}:
            raise ValueError(
                f"table {self.name!r}: belongs_to.column {self.belongs_to.column!r} is not a column"
            )
        return self

    @model_validator(mode="after")
    def _roles(self) -> TableSpec:
        names = [c.name for c in self.columns]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"table {self.name!r}: column(s) declared twice: {', '.join(twice)}")
        roles = [c.role for c in self.columns if c.role and c.role not in MULTI_ROLES]
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
    # declared: person tables are staged by the macro-driven models/staging/declared/ by role;
    # models: the system has hand-written staging models (models/staging/<system>/), as the
    # demo systems have for logic beyond roles (lead statuses, order lines, sessions).
    staging: Literal["declared", "models"] = "declared"
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
        names = {t.name for t in self.tables}
        for table in self.tables:
            for column in table.columns:
                if column.identifier_kind and column.identifier_kind not in declared:
                    raise ValueError(
                        f"table {table.name!r} column {column.name!r}: identifier_kind "
                        f"{column.identifier_kind!r} is not declared under identifier_kinds"
                    )
            if table.belongs_to and table.belongs_to.table not in names:
                raise ValueError(
                    f"table {table.name!r}: belongs_to.table {table.belongs_to.table!r} is not "
                    "a table of this system"
                )
        return self

    @property
    def name(self) -> str:
        return self.system

    def as_tables(self) -> list[Table]:
        return [as_table(self, t) for t in self.tables]


_KIND = {
    "id": ID,
    "text": TEXT,
    "int": INT,
    "decimal": DECIMAL,
    "bool": BOOL,
    "json": JSON,
    "date": DATE,
    "timestamp": TIMESTAMP,
}


def as_table(source: SourceSpec, spec: TableSpec) -> Table:
    links = [
        (c.name, c.person_of or source.system)
        for c in spec.columns
        if c.person_of or c.role == "record_id"
    ]
    parent = None
    if spec.belongs_to:
        parent = (
            spec.belongs_to.column,
            f"{source.system}__{spec.belongs_to.table}",
            spec.belongs_to.parent_column or spec.belongs_to.column,
        )
    return Table(
        source=source.system,
        name=spec.name,
        format=spec.format,
        columns=tuple(
            Column(
                c.name,
                _KIND[c.type],
                required=(
                    c.required
                    if c.required is not None
                    else c.type == "id" or c.role == "record_id"
                ),
                formats=c.formats,
                as_exported=c.store == "as_exported",
            )
            for c in spec.columns
        ),
        description=spec.description or f"{source.system}.{spec.name}, declared in YAML.",
        delimiter=spec.delimiter,
        expectations=tuple(check.expectation(c.name) for c in spec.columns for check in c.checks),
        person_links=tuple(links),
        email_columns=tuple(c.name for c in spec.columns if c.role == "email" or c.contains_email),
        parent=parent,
        encoding=spec.encoding,
        path_glob=spec.path,
        connection_env=spec.connection,
        query=spec.query,
        cursor=spec.cursor,
    )


PROJECT_SOURCES = PROJECT_ROOT / "sources"


def sources_dir() -> Path | None:
    """The extra folder of declarations `CDP_SOURCES_DIR` names (read after the project's)."""
    value = os.environ.get("CDP_SOURCES_DIR")
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def source_folders() -> list[Path]:
    extra = sources_dir()
    folders = [PROJECT_SOURCES]
    if extra is not None and extra.resolve() != PROJECT_SOURCES.resolve():
        folders.append(extra)
    return folders


def read_source(path: Path) -> SourceSpec:
    """A declaration, validated; every problem raised as SourceError naming the file, the line
    and the field."""
    return load_yaml_model(Path(path), SourceSpec, SourceError, "source")


def read_sources(folders: list[Path] | None = None) -> tuple[list[SourceSpec], list[str]]:
    """Every declaration of the folders, and one line per file that cannot be used (it is left
    out; the others still load)."""
    found: list[SourceSpec] = []
    declared_in: dict[str, Path] = {}
    problems: list[str] = []
    for folder in folders if folders is not None else source_folders():
        for path in sorted(Path(folder).glob("*.yml")) if Path(folder).is_dir() else []:
            try:
                spec = read_source(path)
            except SourceError as exc:
                problems.append(str(exc))
                continue
            if spec.system in declared_in:
                problems.append(
                    f"{path}: system: {spec.system!r} is already declared by "
                    f"{declared_in[spec.system]}; give this system another name"
                )
                continue
            declared_in[spec.system] = path
            found.append(spec)
    return found, problems


@dataclass(frozen=True)
class Declarations:
    """What the source folders declare: the usable systems, one line per file left out, and
    their tables."""

    specs: tuple[SourceSpec, ...]
    problems: tuple[str, ...]
    tables: tuple[Table, ...]
    by_key: dict[str, Table]

    @property
    def declared_specs(self) -> list[SourceSpec]:
        """The systems whose person records the macro-driven staging reads."""
        return [spec for spec in self.specs if spec.staging == "declared"]


@cache
def declarations() -> Declarations:
    """Read on first use, once per process: the Dagster code location and the CLI see one set
    of tables, and importing this module reads no file."""
    specs, problems = read_sources()
    tables = tuple(t for spec in specs for t in spec.as_tables())
    return Declarations(tuple(specs), tuple(problems), tables, {t.key: t for t in tables})


def tables() -> tuple[Table, ...]:
    """Every declared table."""
    return declarations().tables


def table(key: str) -> Table:
    by_key = declarations().by_key
    try:
        return by_key[key]
    except KeyError:
        raise KeyError(f"unknown source table {key!r}; known: {sorted(by_key)}") from None
