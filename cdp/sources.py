"""The source systems and their tables: one declaration used by the generator, the raw loader and
the raw data-quality checks, so a column is named in exactly one place."""

from __future__ import annotations

from dataclasses import dataclass, field

# Column kinds the loader validates before a row may enter the raw schema.
ID = "id"  # required, non-empty
TEXT = "text"
INT = "int"
DECIMAL = "decimal"
BOOL = "bool"
JSON = "json"  # nested object, stored as JSON text
# Timestamp/date kinds name the format the exporting system uses.
TS_LOCAL = "ts_local"  # 2025-03-01 12:34:56 (Europe/Berlin wall clock)
TS_ISO = "ts_iso"  # 2025-03-01T12:34:56Z / +01:00 / .123Z
TS_GERMAN = "ts_german"  # 01.03.2025 12:34
DATE_ISO = "date_iso"  # 2025-03-01
DATE_GERMAN = "date_german"  # 01.03.2025
# Declared sources (sources/*.yml) name their formats; the loader stores these as ISO-8601 text
# and keeps the exported text beside it when it differs.
DATE = "date"
TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = TEXT
    # A file without a required column is rejected; an optional one may be missing (null).
    # Ids are required unless said otherwise.
    required: bool | None = None
    # strptime formats tried in order for DATE and TIMESTAMP (ISO-8601 when none).
    formats: tuple[str, ...] = ()

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
    format: str  # csv | jsonl | json
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
        return {"csv": "csv", "jsonl": "jsonl", "json": "json", "parquet": "parquet"}.get(
            self.format, self.format
        )

    @property
    def landing_glob(self) -> str:
        return self.path_glob or f"{self.source}/{self.name}/*.{self.extension}"


# Enumerations the exporting systems use; the generator draws from the same tuples.
LEAD_STATUSES = (
    "New", "Open", "In Progress", "MQL", "SAL", "SQL", "Opportunity", "Customer", "Unqualified",
)  # fmt: skip
# The order a lead moves through; Open and In Progress are working states before MQL.
FUNNEL_STATUSES = ("New", "MQL", "SAL", "SQL", "Opportunity", "Customer")
TICKET_PRIORITIES = ("Niedrig", "Normal", "Hoch", "Kritisch")
TICKET_STATUSES = ("offen", "wartend", "gelöst", "geschlossen")
SUBSCRIPTION_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending")
ORDER_STATUSES = ("paid", "shipped", "cancelled", "refunded")
LOYALTY_TIERS = ("Bronze", "Silber", "Gold", "Platin")

EMAIL_REGEX = r"^\s*[^@\s]+@[^@\s]+\.[A-Za-z]{2,}\s*$"


def _cols(*spec: str | tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(s) if isinstance(s, str) else Column(*s) for s in spec)


TABLES: tuple[Table, ...] = (
    Table(
        "crm",
        "accounts",
        "csv",
        _cols(
            ("account_id", ID),
            "name",
            "domain",
            "industry",
            ("employees", INT),
            "country",
            "owner",
            ("created_at", TS_LOCAL),
            ("updated_at", TS_LOCAL),
        ),
        "Companies from the CRM export, one row per account version.",
        expectations=(Expectation("not_null", "account_id"),),
    ),
    Table(
        "crm",
        "contacts",
        "csv",
        _cols(
            ("contact_id", ID),
            "account_id",
            "salutation",
            "first_name",
            "last_name",
            "email",
            "phone",
            "mobile",
            "street",
            "postal_code",
            "city",
            "country",
            ("birth_date", DATE_ISO),
            "job_title",
            "owner",
            "lead_status",
            "lead_source",
            ("created_at", TS_LOCAL),
            ("updated_at", TS_LOCAL),
        ),
        "People from the CRM export; a contact appears again when it was updated.",
        person_links=(("contact_id", "crm"),),
        email_columns=("email",),
        expectations=(
            Expectation("not_null", "contact_id"),
            Expectation("match_regex", "email", regex=EMAIL_REGEX, mostly=0.85),
            Expectation(
                "in_set",
                "lead_status",
                value_set=LEAD_STATUSES,
            ),
        ),
    ),
    Table(
        "crm",
        "lead_status_history",
        "csv",
        _cols(
            ("change_id", ID),
            ("contact_id", ID),
            "lead_status",
            "changed_by",
            ("changed_at", TS_LOCAL),
        ),
        "Field history of the contacts' lead status (one row per change), as CRMs audit it.",
        person_links=(("contact_id", "crm"),),
        expectations=(
            Expectation("not_null", "contact_id"),
            Expectation("in_set", "lead_status", value_set=LEAD_STATUSES),
        ),
    ),
    Table(
        "shop",
        "customers",
        "jsonl",
        _cols(
            ("customer_id", ID),
            "email",
            "first_name",
            "last_name",
            "phone",
            ("billing_address", JSON),
            ("birthday", DATE_ISO),
            ("accepts_marketing", BOOL),
            ("created_at", TS_ISO),
            ("updated_at", TS_ISO),
        ),
        "Web-shop customer accounts (JSON lines); updated accounts are exported again.",
        person_links=(("customer_id", "shop"),),
        email_columns=("email",),
        expectations=(
            Expectation("not_null", "customer_id"),
            Expectation("match_regex", "email", regex=EMAIL_REGEX, mostly=0.9),
        ),
    ),
    Table(
        "shop",
        "orders",
        "jsonl",
        _cols(
            ("order_id", ID),
            "customer_id",
            "email",
            "status",
            "currency",
            ("total_amount", DECIMAL),
            "utm_source",
            "utm_medium",
            "utm_campaign",
            ("ordered_at", TS_ISO),
        ),
        "Web-shop orders (JSON lines).",
        person_links=(("customer_id", "shop"),),
        email_columns=("email",),
        expectations=(
            Expectation("not_null", "order_id"),
            Expectation("in_set", "status", value_set=ORDER_STATUSES),
            Expectation("in_set", "currency", value_set=("EUR", "CHF", "GBP", "USD", "PLN")),
        ),
    ),
    Table(
        "shop",
        "order_lines",
        "jsonl",
        _cols(
            ("order_line_id", ID),
            ("order_id", ID),
            "sku",
            "product_name",
            "category",
            ("quantity", INT),
            ("unit_price", DECIMAL),
        ),
        "Web-shop order lines (JSON lines).",
        parent=("order_id", "shop__orders", "order_id"),
        expectations=(Expectation("not_null", "order_id"),),
    ),
    Table(
        "web",
        "events",
        "jsonl",
        _cols(
            ("event_id", ID),
            ("anonymous_id", ID),
            "user_id",
            "type",
            "event",
            ("timestamp", TS_ISO),
            ("traits", JSON),
            ("context", JSON),
        ),
        "Web-analytics events (NDJSON, Segment-like): page views, logins, form submits.",
        person_links=(("anonymous_id", "web"), ("user_id", "shop")),
        email_columns=("traits",),
        expectations=(
            Expectation("not_null", "anonymous_id"),
            Expectation("in_set", "type", value_set=("page", "identify", "track")),
        ),
    ),
    Table(
        "support",
        "tickets",
        "csv",
        _cols(
            ("ticket_id", ID),
            "requester_email",
            "requester_name",
            "requester_phone",
            "subject",
            "priority",
            "status",
            "channel",
            ("created_at", TS_GERMAN),
            ("updated_at", TS_GERMAN),
        ),
        "Support-desk tickets (semicolon CSV as German Excel exports it, German priorities).",
        person_links=(("ticket_id", "support"),),
        email_columns=("requester_email",),
        delimiter=";",
        expectations=(
            Expectation("not_null", "ticket_id"),
            Expectation("in_set", "priority", value_set=TICKET_PRIORITIES),
            Expectation("in_set", "status", value_set=TICKET_STATUSES),
        ),
    ),
    Table(
        "email",
        "subscribers",
        "csv",
        _cols(
            ("subscriber_id", ID),
            "email",
            "first_name",
            "last_name",
            "language",
            "status",
            ("consent_marketing", BOOL),
            "consent_source",
            ("consent_at", TS_ISO),
            ("created_at", TS_ISO),
            ("updated_at", TS_ISO),
        ),
        "Email-marketing list members with consent.",
        person_links=(("subscriber_id", "email"),),
        email_columns=("email",),
        expectations=(
            Expectation("not_null", "subscriber_id"),
            Expectation("match_regex", "email", regex=EMAIL_REGEX, mostly=0.95),
            Expectation("in_set", "status", value_set=SUBSCRIPTION_STATUSES),
        ),
    ),
    Table(
        "email",
        "activity",
        "csv",
        _cols(
            ("activity_id", ID),
            ("subscriber_id", ID),
            "email",
            "campaign_id",
            "campaign_name",
            "activity_type",
            "url",
            ("occurred_at", TS_ISO),
        ),
        "Email sends, opens, clicks, bounces and unsubscribes.",
        person_links=(("subscriber_id", "email"),),
        email_columns=("email",),
        expectations=(
            Expectation("not_null", "activity_id"),
            Expectation(
                "in_set",
                "activity_type",
                value_set=("send", "open", "click", "bounce", "unsubscribe"),
            ),
        ),
    ),
    Table(
        "loyalty",
        "cards",
        "csv",
        _cols(
            ("card_number", ID),
            "holder_first_name",
            "holder_last_name",
            "email",
            "phone",
            ("birth_date", DATE_GERMAN),
            "postal_code",
            "city",
            "country",
            "home_store_id",
            "tier",
            ("issued_at", TS_LOCAL),
        ),
        "Loyalty/POS card holders.",
        person_links=(("card_number", "loyalty"),),
        email_columns=("email",),
        expectations=(
            Expectation("not_null", "card_number"),
            Expectation("in_set", "tier", value_set=LOYALTY_TIERS),
        ),
    ),
    Table(
        "loyalty",
        "purchases",
        "csv",
        _cols(
            ("purchase_id", ID),
            ("card_number", ID),
            "store_id",
            ("amount", DECIMAL),
            "currency",
            ("items", INT),
            ("purchased_at", TS_LOCAL),
        ),
        "In-store purchases scanned with a loyalty card.",
        person_links=(("card_number", "loyalty"),),
        expectations=(Expectation("not_null", "purchase_id"),),
    ),
    Table(
        "reviews",
        "reviews",
        "json",
        _cols(
            ("review_id", ID),
            "product_sku",
            ("rating", INT),
            "title",
            "reviewer_name",
            "reviewer_email",
            ("verified_purchase", BOOL),
            ("submitted_at", TS_ISO),
        ),
        "Product reviews (one JSON document per export, an array of reviews).",
        person_links=(("review_id", "reviews"),),
        email_columns=("reviewer_email",),
        expectations=(
            Expectation("not_null", "review_id"),
            Expectation("in_set", "rating", value_set=("1", "2", "3", "4", "5")),
        ),
    ),
)

TABLES_BY_KEY = {t.key: t for t in TABLES}

# An email address inside any text (a field, a JSON document, a raw line): the characters a
# normalized address may hold (the staging macro normalize_email), case-folded first.
EMAIL_TOKEN = r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}"
SOURCES = tuple(dict.fromkeys(t.source for t in TABLES))


def table(key: str) -> Table:
    try:
        return TABLES_BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown source table {key!r}; known: {sorted(TABLES_BY_KEY)}") from None
