"""Deterministic, streaming generator of messy DACH-first customer data from seven systems.

Every person is generated, written to each system that knows them, and forgotten: memory stays
flat however many people are asked for. `ground_truth.csv` maps each person-bearing record to the
person behind it and sits beside the landing folders, never inside them.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
import random
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
from faker import Faker

from cdp.demo.behaviour import (
    BEHAVIOUR_BASES,
    BEHAVIOUR_EFFECTS,
    CAMPAIGN_RETURNS,
    LEAD_DISQUALIFIED,
    PURCHASES,
    STAGES,
    Latent,
    chance_of_stage,
    lead_value,
    shifted,
    stage_reached,
    true_effects,
)
from cdp.demo.generate_vocabulary import GENERATOR_NICKNAMES
from cdp.ingest.sources import Table, declarations

# The demo systems the generator plays (their declarations are sources/<system>.yml).
DEMO_SYSTEMS = ("crm", "shop", "web", "support", "email", "loyalty", "reviews", "ads")
# What the simulated systems write; their declarations' checks hold what the pipeline accepts
# (a test compares the two).
LEAD_STATUSES = (
    "New", "Open", "In Progress", "MQL", "SAL", "SQL", "Opportunity", "Customer", "Unqualified",
)  # fmt: skip
# The order a lead moves through; Open and In Progress are working states before MQL.
FUNNEL_STATUSES = ("New", *STAGES)
TICKET_PRIORITIES = ("Niedrig", "Normal", "Hoch", "Kritisch")
TICKET_STATUSES = ("offen", "wartend", "gelöst", "geschlossen")
SUBSCRIPTION_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending")
ORDER_STATUSES = ("paid", "shipped", "cancelled", "refunded")
LOYALTY_TIERS = ("Bronze", "Silber", "Gold", "Platin")

BERLIN = ZoneInfo("Europe/Berlin")
DEFAULT_AS_OF = dt.datetime(2026, 11, 1, 6, 0, 0)
HISTORY_DAYS = 3 * 365

# (country, faker locale, calling code, currency, weight, phone area codes, mobile prefixes)
COUNTRIES = (
    (
        "DE",
        "de_DE",
        "49",
        "EUR",
        55,
        ("30", "40", "89", "221", "69", "711", "211", "351"),
        ("151", "160", "170", "176"),
    ),
    ("AT", "de_AT", "43", "EUR", 12, ("1", "316", "512", "662"), ("664", "676", "699")),
    ("CH", "de_CH", "41", "CHF", 10, ("44", "31", "61", "41"), ("76", "78", "79")),
    ("NL", "nl_NL", "31", "EUR", 4, ("20", "10", "70"), ("6",)),
    ("FR", "fr_FR", "33", "EUR", 4, ("1", "4", "3"), ("6", "7")),
    ("GB", "en_GB", "44", "GBP", 4, ("20", "161", "121"), ("7700", "7911")),
    ("US", "en_US", "1", "USD", 4, ("212", "415", "312"), ("646", "917")),
    ("PL", "pl_PL", "48", "PLN", 3, ("22", "12", "61"), ("50", "60", "69")),
    ("IT", "it_IT", "39", "EUR", 2, ("02", "06", "011"), ("33", "34")),
    ("ES", "es_ES", "34", "EUR", 2, ("91", "93", "96"), ("6",)),
    # A few customers from countries the shop does not serve by name; they pay in EUR.
    ("SE", "sv_SE", "46", "EUR", 1, ("8", "31", "40"), ("70", "72", "73")),
    ("AU", "en_AU", "61", "EUR", 1, ("2", "3", "7"), ("4",)),
    ("TR", "tr_TR", "90", "EUR", 1, ("212", "216", "312"), ("530", "532", "542")),
)
# Trunk prefix dialled before national numbers, and national number lengths (landline, mobile).
# Italy keeps the 0 of its area codes in international form; Poland and Spain have no prefix.
PHONE_PLAN = {
    "DE": ("0", 10, 11),
    "AT": ("0", 10, 11),
    "CH": ("0", 9, 9),
    "NL": ("0", 9, 9),
    "FR": ("0", 9, 9),
    "GB": ("0", 10, 10),
    "US": ("1", 10, 10),
    "PL": ("", 9, 9),
    "IT": ("", 10, 10),
    "ES": ("", 9, 9),
    "SE": ("0", 9, 9),
    "AU": ("0", 9, 9),
    "TR": ("0", 10, 10),
}
# How each system writes a country: the mess staging must normalize.
COUNTRY_SPELLINGS = {
    "DE": ("DE", "Deutschland", "Germany", "GER", "de", "D"),
    "AT": ("AT", "Österreich", "Austria", "AUT", "Oesterreich"),
    "CH": ("CH", "Schweiz", "Switzerland", "CHE", "Suisse"),
    "NL": ("NL", "Niederlande", "Netherlands", "Nederland"),
    "FR": ("FR", "Frankreich", "France"),
    "GB": ("GB", "UK", "United Kingdom", "Großbritannien"),
    "US": ("US", "USA", "United States", "Vereinigte Staaten"),
    "PL": ("PL", "Polen", "Poland", "Polska"),
    "IT": ("IT", "Italien", "Italy", "Italia"),
    "ES": ("ES", "Spanien", "Spain", "España"),
    "SE": ("SE", "Schweden", "Sweden", "Sverige"),
    "AU": ("AU", "Australien", "Australia", "AUS"),
    "TR": ("TR", "Türkei", "Turkey", "Türkiye"),
}
FREEMAIL = {
    "DE": ("gmx.de", "web.de", "t-online.de", "gmail.com", "outlook.de", "posteo.de", "freenet.de"),
    "AT": ("gmx.at", "aon.at", "gmail.com", "chello.at"),
    "CH": ("bluewin.ch", "gmx.ch", "gmail.com", "sunrise.ch"),
    "NL": ("gmail.com", "ziggo.nl", "kpnmail.nl"),
    "FR": ("orange.fr", "gmail.com", "free.fr"),
    "GB": ("gmail.com", "btinternet.com", "outlook.com"),
    "US": ("gmail.com", "yahoo.com", "outlook.com"),
    "PL": ("wp.pl", "onet.pl", "gmail.com"),
    "IT": ("libero.it", "gmail.com", "virgilio.it"),
    "ES": ("gmail.com", "telefonica.net", "hotmail.es"),
    "SE": ("gmail.com", "telia.com", "hotmail.se"),
    "AU": ("gmail.com", "bigpond.com", "outlook.com.au"),
    "TR": ("gmail.com", "hotmail.com", "yandex.com.tr"),
}
UMLAUT_SURNAMES = (
    "Müller",
    "Schäfer",
    "Köhler",
    "Jäger",
    "Günther",
    "Krüger",
    "Böhm",
    "Schröder",
    "Hübner",
    "Weiß",
    "Groß",
    "Strauß",
    "Görtz",
    "Käfer",
    "Döring",
    "Fürst",
    "Bäcker",
    "Möller",
    "Löffler",
    "Süß",
    "Kühn",
    "Schütz",
    "Thür",
    "Nägele",
    "Höfler",
    "Lößl",
)
JUNK_EMAILS = ("test@test.de", "keine@angabe.de", "noreply@example.com", "xxx@xxx.de", "test")
JUNK_PHONES = ("0000000", "0000 000000", "+49 000 0000000", "123456", "0")
LEAD_SOURCES = ("Website", "Messe", "Empfehlung", "Kaltakquise", "Webinar", "Partner", "LinkedIn")
INDUSTRIES = (
    "Maschinenbau",
    "Handel",
    "Software",
    "Automotive",
    "Gesundheit",
    "Logistik",
    "Finanzen",
    "Bau",
    "Medien",
    "Energie",
)
UTM = (
    ("google", "cpc", "brand_search"),
    ("google", "cpc", "generic_search"),
    ("facebook", "paid_social", "winter_sale"),
    ("newsletter", "email", "newsletter_weekly"),
    ("instagram", "paid_social", "influencer_q3"),
    ("linkedin", "paid_social", "b2b_leads"),
    ("idealo", "affiliate", "price_comparison"),
)
# What each campaign of UTM costs a day (EUR; LinkedIn bills in USD) and each email campaign a
# month: budgets that differ by an order of magnitude, so campaign_roi has something to rank.
DAILY_BUDGETS = {
    "brand_search": 150.0,
    "generic_search": 600.0,
    "winter_sale": 500.0,
    "newsletter_weekly": 30.0,
    "influencer_q3": 900.0,
    "b2b_leads": 1400.0,
    "price_comparison": 400.0,
}
USD_PLATFORMS = ("linkedin",)
VISIT_WEIGHTS = [DAILY_BUDGETS[campaign] for _, _, campaign in UTM]
ORDER_WEIGHTS = [DAILY_BUDGETS[c] * CAMPAIGN_RETURNS[c] for _, _, c in UTM]
EMAIL_CAMPAIGN_MONTHLY_COST = 250.0
REFERRERS = (
    "https://www.google.com/",
    "https://www.google.de/",
    "https://www.bing.com/",
    "https://www.facebook.com/",
    "https://www.instagram.com/",
    "https://t.co/",
    "https://www.idealo.de/",
    "",
)
PAGES = (
    "/",
    "/produkte",
    "/produkte/laufschuhe",
    "/produkte/jacken",
    "/sale",
    "/kontakt",
    "/blog/pflege-tipps",
    "/warenkorb",
    "/konto",
)
CATEGORIES = ("Schuhe", "Jacken", "Hosen", "Accessoires", "Outdoor")
BRANDS = ("Alpenläufer", "Nordkamm", "Urbanwerk", "Fjellgrat", "Stadtfuchs", "Bergfink")
SHOE_SIZES = tuple(str(size) for size in range(36, 47))
CLOTHING_SIZES = ("XS", "S", "M", "L", "XL", "XXL")
# The sizes a category is sold in (none: one size).
SIZES_OF = {"Schuhe": SHOE_SIZES, "Jacken": CLOTHING_SIZES, "Hosen": CLOTHING_SIZES}
# A deal's typical value by the account's employees (None: no account), EUR-like units.
DEAL_SIZES = {None: 3_000, 8: 2_000, 25: 5_000, 120: 15_000, 480: 40_000, 2500: 120_000}
DEAL_STAGES = ("Open", "Won", "Lost")
DEAL_NAMES = ("Rahmenvertrag", "Erstausstattung", "Jahreslizenz", "Pilotprojekt", "Erweiterung")
TICKET_SUBJECTS = (
    "Lieferung verspätet",
    "Rücksendung",
    "Falsche Größe geliefert",
    "Rechnung fehlt",
    "Artikel beschädigt",
    "Frage zum Produkt",
    "Passwort vergessen",
    "Kündigung Newsletter",
    "Reklamation",
    "Gutschein funktioniert nicht",
)
CAMPAIGNS = tuple(
    (f"CMP{i:04d}", name)
    for i, name in enumerate(
        (
            "Willkommensserie",
            "Winter Sale",
            "Black Friday",
            "Frühjahrskollektion",
            "Sommer Sale",
            "Herbstneuheiten",
            "Treueaktion",
            "Weihnachtsgeschenke",
            "Outdoor Spezial",
            "Reaktivierung",
            "Neujahr",
            "Ostern",
        ),
        start=1,
    )
)
REPS = (
    "Anna Schmidt",
    "Jonas Weber",
    "Lea Fischer",
    "Paul Wagner",
    "Mia Becker",
    "Felix Hoffmann",
    "Emma Schulz",
    "Lukas Koch",
)


def _cities(fk: Faker) -> list[str] | None:
    """Some locales (it_IT) build their city list from a set, whose order changes per process:
    drawing from it sorted keeps the same seed giving the same files."""
    cities = next((p.cities for p in fk.providers if hasattr(p, "cities")), None)
    return sorted(cities) if cities else None


def _number(rng: random.Random, prefixes: tuple[str, ...], length: int) -> tuple[str, str]:
    """(area or mobile prefix, subscriber number) making a national number of `length` digits."""
    prefix = rng.choice(prefixes)
    digits = length - len(prefix)
    return prefix, str(rng.randrange(10 ** (digits - 1), 10**digits))


def fold_ascii(text: str) -> str:
    """Müller -> Mueller, Weiß -> Weiss, José -> Jose: names as typed into email addresses."""
    text = (
        text.replace("ä", "ae")
        .replace("ö", "oe")
        .replace("ü", "ue")
        .replace("Ä", "Ae")
        .replace("Ö", "Oe")
        .replace("Ü", "Ue")
        .replace("ß", "ss")
    )
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def strip_umlauts(text: str) -> str:
    """Müller -> Muller: the spelling an English keyboard produces."""
    return unicodedata.normalize("NFKD", text.replace("ß", "ss")).encode("ascii", "ignore").decode()


@dataclass
class Address:
    street: str
    postal_code: str
    city: str


@dataclass
class Person:
    person_id: str
    country: str
    calling_code: str
    currency: str
    gender: str
    first_name: str
    last_name: str
    birth_date: dt.date
    private_email: str
    landline: tuple[str, str]  # (area, subscriber)
    mobile: tuple[str, str]
    address: Address
    old_address: Address | None
    moved_at: dt.datetime | None
    first_seen: dt.datetime
    account: tuple | None = None
    work_email: str | None = None
    cookies: list[str] = field(default_factory=list)
    shop_customer_id: str | None = None
    latent: Latent | None = None
    # (when, channel) of every purchase, online or store; whether still a customer at the end
    purchases: list[tuple[dt.datetime, str]] = field(default_factory=list)
    alive: bool = False


@dataclass
class Stats:
    people: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    duplicates: int = 0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


# Exports not in UTF-8, as their systems write them: the support desk's CSV comes from German
# Excel (Windows-1252; characters it lacks become "?"). The loader detects it.
EXPORT_ENCODINGS = {"support__tickets": "cp1252"}
# Optional columns an export leaves out: the POS exports its cards without the home store.
OMITTED_COLUMNS = {"loyalty__cards": ("home_store_id",)}


class _Writer:
    """One landing file; knows its table's format and injects exact duplicates and broken rows."""

    def __init__(self, table: Table, path: Path, stack: ExitStack, gen: Generator):
        self.table, self.gen, self.count = table, gen, 0
        self.names = [c for c in table.column_names if c not in OMITTED_COLUMNS.get(table.key, ())]
        path.parent.mkdir(parents=True, exist_ok=True)
        encoding = EXPORT_ENCODINGS.get(table.key, "utf-8")
        self.fh = stack.enter_context(
            path.open("w", encoding=encoding, errors="replace", newline="")
        )
        self.first_json = True
        if table.format == "csv":
            self.csv = csv.writer(self.fh, delimiter=table.delimiter, lineterminator="\n")
            self.csv.writerow(self.names)
        elif table.format == "json":
            self.fh.write("[\n")
            stack.callback(lambda: self.fh.write("\n]\n"))

    def _emit(self, row: dict) -> None:
        if self.table.format == "csv":
            self.csv.writerow([row.get(c) for c in self.names])
        else:
            omitted = OMITTED_COLUMNS.get(self.table.key, ())
            self._write_json(
                orjson.dumps({k: v for k, v in row.items() if k not in omitted}).decode()
            )
        self.count += 1

    def _write_json(self, text: str) -> None:
        """One JSON document: a line of JSON lines, or an element of the JSON array."""
        if self.table.format == "json":
            self.fh.write(text if self.first_json else ",\n" + text)
            self.first_json = False
        else:
            self.fh.write(text + "\n")

    def write(self, row: dict) -> None:
        rng = self.gen.rng
        self._emit(row)
        if rng.random() < self.gen.duplicate_rate:
            self._emit(row)
            self.gen.stats.duplicates += 1
        if rng.random() < self.gen.malformed_rate:
            self._emit_malformed(row)

    def _emit_malformed(self, row: dict) -> None:
        """A broken export line: truncated, missing its id, or carrying an unparseable value."""
        rng, table = self.gen.rng, self.table
        kind = rng.choice(("truncated", "missing_id", "bad_value"))
        self.gen.stats.malformed += 1
        self.count += 1
        broken = dict(row)
        if kind == "missing_id":
            broken[table.columns[0].name] = ""
        elif kind == "bad_value":
            typed = [c for c in table.columns if c.kind not in ("text", "id", "json")]
            if typed:
                broken[rng.choice(typed).name] = rng.choice(("n/a", "31.02.2025x", "12,5€", "?"))
            else:
                broken[table.columns[0].name] = ""
        if table.format == "csv":
            values = [broken.get(c) for c in self.names]
            if kind == "truncated":
                values = values[: max(1, len(values) // 2)]
            self.csv.writerow(values)
            return
        text = orjson.dumps(broken).decode()
        if kind == "truncated":
            text = text[: max(2, len(text) // 2)]
        self._write_json(text)


class Generator:
    def __init__(
        self,
        people: int,
        seed: int = 42,
        out: Path = Path("data/demo"),
        as_of: dt.datetime = DEFAULT_AS_OF,
        batch: str = "initial",
        malformed_rate: float = 0.001,
        duplicate_rate: float = 0.01,
        first_person: int = 1,
    ):
        if people < 1:
            raise ValueError("--people must be at least 1")
        self.people, self.seed, self.out, self.as_of, self.batch = people, seed, out, as_of, batch
        self.first_person = first_person
        self.malformed_rate, self.duplicate_rate = malformed_rate, duplicate_rate
        self.rng = random.Random(f"{seed}:{batch}")
        self.stats = Stats()
        self._used_emails: set[str] = set()
        self.account_rows: dict[str, dict] = {}
        self.lead_truth: list[tuple] = []  # of the person being written
        self._build_pools()

    # ---------------------------------------------------------------- reference pools
    def _build_pools(self) -> None:
        self.pools = {}
        for country, locale, *_rest in COUNTRIES:
            fk = Faker(locale)
            fk.seed_instance(self.seed)
            cities = _cities(fk)
            self.pools[country] = {
                "male": [fk.first_name_male() for _ in range(400)],
                "female": [fk.first_name_female() for _ in range(400)],
                "last": [fk.last_name() for _ in range(1500)],
                "street": [fk.street_name() for _ in range(400)],
                "place": [
                    (fk.postcode(), fk.random_element(cities) if cities else fk.city())
                    for _ in range(400)
                ],
            }
        # German-speaking countries share their names: pool them for a realistic long tail.
        german = ("DE", "AT", "CH")
        for key in ("male", "female", "last"):
            shared = sorted({name for c in german for name in self.pools[c][key]})
            for c in german:
                self.pools[c][key] = shared
        self.country_codes = [c[0] for c in COUNTRIES]
        self.country_weights = [c[4] for c in COUNTRIES]
        self.country_spec = {c[0]: c for c in COUNTRIES}
        by_name = {name: list(variants) for name, variants in GENERATOR_NICKNAMES.items()}
        self.nicknames = by_name
        self.nickname_givens = sorted(by_name)
        # Products and accounts depend on the seed only, so every batch shares them.
        fk = Faker("de_DE")
        fk.seed_instance(self.seed)
        pool_rng = random.Random(f"{self.seed}:pools")
        self.products = [
            (
                f"SKU-{i:05d}",
                f"{fk.word().title()} {pool_rng.choice(CATEGORIES)}",
                CATEGORIES[i % len(CATEGORIES)],
                round(pool_rng.uniform(9, 250), 2),
            )
            for i in range(60)
        ]
        # per category, and per category and brand, in catalogue order
        self.products_of: dict = {}
        for item in self.products:
            for key in (item[2], (item[2], self._brand(item[0]))):
                self.products_of.setdefault(key, []).append(item)
        self.accounts = []
        for i in range(max(8, (self.first_person + self.people) // 40)):
            company = fk.company()
            slug = fold_ascii(company.split()[0]).lower().strip(",.&-") or "firma"
            self.accounts.append((f"A-{i + 1:06d}", company, f"{slug}{i + 1}.de"))

    # ---------------------------------------------------------------- helpers
    def _ts(self, start: dt.datetime, max_days: float = HISTORY_DAYS) -> dt.datetime:
        span = max(0.0, min(max_days, (self.as_of - start).total_seconds() / 86400))
        return start + dt.timedelta(seconds=int(self.rng.random() * span * 86400))

    def _email_for(self, first: str, last: str, country: str, pid: int) -> str:
        rng = self.rng
        f, la = (
            fold_ascii(first).lower().replace(" ", ""),
            fold_ascii(last).lower().replace(" ", ""),
        )
        pattern = rng.random()
        if pattern < 0.45:
            local = f"{f}.{la}"
        elif pattern < 0.65:
            local = f"{f[:1]}{la}"
        elif pattern < 0.8:
            local = f"{f}_{la}"
        else:
            local = f"{f}{la}{rng.randint(1, 99)}"
        domain = rng.choice(FREEMAIL[country])
        email = f"{local}@{domain}"
        if email in self._used_emails:
            email = f"{local}{pid % 10000}@{domain}"
        self._used_emails.add(email)
        return email

    def _address(self, country: str) -> Address:
        pool = self.pools[country]
        postal, city = self.rng.choice(pool["place"])
        return Address(
            f"{self.rng.choice(pool['street'])} {self.rng.randint(1, 180)}", postal, city
        )

    def _person(self, n: int, household_of: Person | None) -> Person:
        rng = self.rng
        if household_of:
            country = household_of.country
        else:
            country = rng.choices(self.country_codes, self.country_weights)[0]
        spec = self.country_spec[country]
        pool = self.pools[country]
        gender = rng.choice(("male", "female"))
        if country in ("DE", "AT", "CH") and rng.random() < 0.12:
            first = rng.choice(self.nickname_givens)
        else:
            first = rng.choice(pool[gender])
        if household_of:
            last = household_of.last_name
        elif country in ("DE", "AT", "CH") and rng.random() < 0.08:
            last = rng.choice(UMLAUT_SURNAMES)
        else:
            last = rng.choice(pool["last"])
        first_seen = self.as_of - dt.timedelta(days=rng.random() * HISTORY_DAYS)
        address = household_of.address if household_of else self._address(country)
        old_address, moved_at = None, None
        if rng.random() < 0.1:
            old_address, address = address, self._address(country)
            moved_at = self._ts(first_seen)
        _, landline_len, mobile_len = PHONE_PLAN[country]
        landline = household_of.landline if household_of else _number(rng, spec[5], landline_len)
        mobile = _number(rng, spec[6], mobile_len)
        birth = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 365 * 65))
        person = Person(
            person_id=f"P{n:08d}",
            country=country,
            calling_code=spec[2],
            currency=spec[3],
            gender=gender,
            first_name=first,
            last_name=last,
            birth_date=birth,
            private_email=self._email_for(first, last, country, n),
            landline=landline,
            mobile=mobile,
            address=address,
            old_address=old_address,
            moved_at=moved_at,
            first_seen=first_seen,
        )
        if rng.random() < 0.3:
            person.account = rng.choice(self.accounts)
            f = fold_ascii(first).lower().replace(" ", "")
            la = fold_ascii(last).lower().replace(" ", "")
            person.work_email = f"{f}.{la}@{person.account[2]}"
        return person

    # ---------------------------------------------------------------- messy renderings
    def name_variant(self, p: Person) -> tuple[str, str]:
        rng = self.rng
        first, last = p.first_name, p.last_name
        r = rng.random()
        if r < 0.15 and first in self.nicknames:
            first = rng.choice(self.nicknames[first])
        elif r < 0.19 and len(first) > 3:  # a typo: swap two letters or drop one
            i = rng.randint(1, len(first) - 2)
            first = (
                first[:i] + first[i + 1] + first[i] + first[i + 2 :]
                if rng.random() < 0.5
                else first[:i] + first[i + 1 :]
            )
        if any(ch in last for ch in "äöüßÄÖÜ"):
            r = rng.random()
            if r < 0.25:
                last = fold_ascii(last)
            elif r < 0.35:
                last = strip_umlauts(last)
        elif rng.random() < 0.02 and len(last) > 4:
            i = rng.randint(1, len(last) - 2)
            last = last[:i] + last[i + 1 :]
        r = rng.random()
        if r < 0.03:
            first, last = first.upper(), last.upper()
        elif r < 0.05:
            first, last = first.lower(), last.lower()
        elif r < 0.09:
            first, last = f" {first}", f"{last}  "
        return first, last

    def email_variant(self, email: str | None, missing: float = 0.05) -> str | None:
        rng = self.rng
        r = rng.random()
        if email is None or r < missing:
            return None
        if r < missing + 0.008:
            return rng.choice(JUNK_EMAILS)
        r = rng.random()
        if r < 0.08:
            return email.upper() if rng.random() < 0.3 else email.title()
        if r < 0.12:
            return f" {email} "
        return email

    def phone_variant(
        self, p: Person, number: tuple[str, str], missing: float = 0.15
    ) -> str | None:
        rng = self.rng
        r = rng.random()
        if r < missing:
            return None
        if r < missing + 0.01:
            return rng.choice(JUNK_PHONES)
        cc, (area, sub) = p.calling_code, number
        if cc == "1":
            return rng.choice(
                (
                    f"({area}) {sub[:3]}-{sub[3:]}",
                    f"+1 {area} {sub[:3]} {sub[3:]}",
                    f"{area}-{sub[:3]}-{sub[3:]}",
                )
            )
        trunk = PHONE_PLAN[p.country][0]
        return rng.choice(
            (
                f"+{cc} {area} {sub}",
                f"{trunk}{area} {sub}",
                f"{trunk}{area}/{sub}",
                f"00{cc} {area} {sub}",
                f"+{cc} (0){area} {sub}" if trunk == "0" else f"+{cc} {area}-{sub}",
                f"({trunk}{area}) {sub[:3]} {sub[3:]}",
                f"+{cc}{area}{sub}",
                f"{trunk}{area}-{sub}",
            )
        )

    def birth_date_text(self, p: Person, fmt: str) -> str:
        """The birth date as a system writes it; about 1 in 100 is impossible (a 30 February, a
        placeholder of zeros), as hand-typed dates are."""
        if self.rng.random() >= 0.01:
            return p.birth_date.strftime(fmt)
        impossible = self.rng.choice((f"{p.birth_date.year}-02-30", "0000-00-00"))
        if fmt == "%Y-%m-%d":
            return impossible
        year, month, day = impossible.split("-")
        return f"{day}.{month}.{year}"

    def country_variant(self, country: str) -> str:
        return self.rng.choice(COUNTRY_SPELLINGS[country])

    def address_at(self, p: Person, when: dt.datetime) -> Address:
        if p.old_address is not None and p.moved_at is not None and when < p.moved_at:
            return p.old_address
        return p.address

    # ---------------------------------------------------------------- the run
    def run(self, progress: Callable[[int], None] | None = None) -> Stats:
        self.out.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            writers = {
                t.key: _Writer(
                    t,
                    self.out / t.source / t.name / f"{t.name}_{self.batch}.{t.extension}",
                    stack,
                    self,
                )
                for t in demo_tables()
            }
            truth_path = self.out / (
                "ground_truth.csv" if self.batch == "initial" else f"ground_truth_{self.batch}.csv"
            )
            truth_fh = stack.enter_context(truth_path.open("w", encoding="utf-8", newline=""))
            truth = csv.writer(truth_fh, lineterminator="\n")
            truth.writerow(("source", "source_record_id", "person_id"))
            # The CRM exports all accounts every time.
            for acc_id, name, domain in self.accounts:
                self.account_rows[acc_id] = self._account_row(acc_id, name, domain)
                writers["crm__accounts"].write(self.account_rows[acc_id])
            people_truth, leads_truth = self._truth_writers(stack)
            household: Person | None = None
            for i in range(self.people):
                n = self.first_person + i
                share = household is not None and self.rng.random() < 0.05
                person = self._person(n, household if share else None)
                household = person
                for source, record_id in self._emit_person(person, writers):
                    truth.writerow((source, record_id, person.person_id))
                self._write_person_truth(person, people_truth)
                leads_truth.writerows(self.lead_truth)
                self.lead_truth.clear()
                for anon in range(self.rng.randint(0, 1)):
                    cookie = self._cookie()
                    self._web_session(None, cookie, writers, anonymous=True)
                    truth.writerow(("web", cookie, f"V{n:08d}{anon}"))
                if progress and (i + 1) % 1000 == 0:
                    progress(1000)
            if progress:
                progress(self.people % 1000)
            self._campaign_costs(writers["ads__campaign_costs"])
            self.stats.people = self.people
            self.stats.rows = {k: w.count for k, w in writers.items()}
        return self.stats

    def _truth_writers(self, stack: ExitStack):
        """CSV writers of the people's and the leads' true drivers (true_behaviour*.csv,
        true_leads*.csv), and true_effects.json: what the models should find."""
        suffix = "" if self.batch == "initial" else f"_{self.batch}"
        (self.out / "true_effects.json").write_bytes(
            orjson.dumps(true_effects(self.seed), option=orjson.OPT_INDENT_2)
        )
        writers = []
        for name, header in (
            (
                "true_behaviour",
                ("person_id", "intent", "purchase_rate_per_year", "dropout_probability",
                 "purchases", "alive_at_as_of", "favourite_category", "favourite_brand",
                 "shoe_size", "clothing_size"),
            ),
            (
                "true_leads",
                ("contact_id", "person_id", "lead_value", "chance_of_sal", "chance_of_customer",
                 "stage_reached", "final_status"),
            ),
        ):  # fmt: skip
            fh = stack.enter_context(
                (self.out / f"{name}{suffix}.csv").open("w", encoding="utf-8", newline="")
            )
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            writers.append(writer)
        return writers

    @staticmethod
    def _write_person_truth(p: Person, writer) -> None:
        latent = p.latent
        writer.writerow(
            (
                p.person_id,
                f"{latent.intent:.4f}",
                f"{latent.purchase_rate:.4f}",
                f"{latent.dropout:.4f}",
                len(p.purchases),
                p.alive,
                CATEGORIES[latent.favourite_category],
                BRANDS[latent.favourite_brand],
                SHOE_SIZES[latent.shoe_size],
                CLOTHING_SIZES[latent.clothing_size],
            )
        )

    def _purchase_times(self, p: Person, since: dt.datetime, newsletter: bool, tickets: bool):
        """BG/NBD: the times of the person's purchases, at their rate while alive, each followed
        by a chance to leave; the first soon after signing up. Sets p.alive."""
        latent = p.latent
        if not latent.buys:
            return []
        rng = random.Random(f"{self.seed}:{p.person_id}:purchases")
        per_day = latent.purchase_rate * math.exp(PURCHASES["rate_newsletter"] * newsletter) / 365
        dropout = min(0.95, latent.dropout + PURCHASES["dropout_support_tickets"] * tickets)
        times = []
        when = self._within_history(since, rng.expovariate(per_day * 3))
        p.alive = True
        while when is not None and len(times) < PURCHASES["max_purchases"]:
            times.append(when)
            if rng.random() < dropout:
                p.alive = False
                break
            when = self._within_history(when, rng.expovariate(per_day))
        return times

    def _within_history(self, start: dt.datetime, days: float) -> dt.datetime | None:
        """`days` after `start`, or None past the as-of time. A slow buyer's gap can outrun what
        a datetime holds (year 9999): 48,076 people at seed 1 met one."""
        if days >= (self.as_of - start).total_seconds() / 86400:
            return None
        return start + dt.timedelta(days=days)

    def _campaign_costs(self, writer: _Writer) -> None:
        """The ad platforms' and the email tool's costs: every day of the history in the first
        export, the batch's day (its name, when it is a date) in later ones."""
        # a generator of its own: the people's draws stay as they were
        rng = random.Random(f"{self.seed}:costs:{self.batch}")
        if self.batch == "initial":
            days = [self.as_of.date() - dt.timedelta(days=d) for d in range(HISTORY_DAYS)]
        else:
            try:
                days = [dt.date.fromisoformat(self.batch)]
            except ValueError:
                days = [self.as_of.date() + dt.timedelta(days=1)]
        for day in sorted(days):
            for platform, medium, campaign in UTM:
                usd = platform in USD_PLATFORMS
                cost = DAILY_BUDGETS[campaign] * rng.uniform(0.7, 1.3) / (0.92 if usd else 1.0)
                writer.write(self._cost_row(day, platform, medium, campaign, cost, usd))
            if day.day == 1:  # the email tool invoices each campaign monthly
                for _, name in CAMPAIGNS:
                    cost = EMAIL_CAMPAIGN_MONTHLY_COST * rng.uniform(0.8, 1.2)
                    writer.write(self._cost_row(day, "newsletter", "email", name, cost, False))

    @staticmethod
    def _cost_row(day, platform, medium, campaign, cost, usd) -> dict:
        return {
            "cost_id": f"{platform}:{campaign}:{day.isoformat()}",
            "cost_date": day.isoformat(),
            "platform": platform,
            "medium": medium,
            "campaign": campaign,
            "cost": f"{cost:.2f}",
            "currency": "USD" if usd else "EUR",
        }

    def _account_row(self, acc_id: str, name: str, domain: str) -> dict:
        rng = random.Random(f"{self.seed}:{acc_id}")  # the same account in every export
        created = self.as_of - dt.timedelta(days=rng.random() * HISTORY_DAYS * 1.5)
        return {
            "account_id": acc_id,
            "name": name,
            "domain": domain,
            "industry": rng.choice(INDUSTRIES),
            "employees": rng.choice((8, 25, 120, 480, 2500)),
            "country": rng.choice(COUNTRY_SPELLINGS[rng.choice(("DE", "DE", "AT", "CH"))]),
            "owner": rng.choice(REPS),
            "created_at": _local(created),
            "updated_at": _local(created + dt.timedelta(days=rng.random() * 200)),
        }

    def _cookie(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def _emit_person(self, p: Person, w: dict[str, _Writer]) -> Iterator[tuple[str, str]]:
        rng = self.rng
        in_crm = p.account is not None or rng.random() < 0.12
        in_shop = rng.random() < 0.6
        in_email = rng.random() < 0.45
        in_loyalty = rng.random() < (0.3 if p.country in ("DE", "AT", "CH") else 0.08)
        in_support = rng.random() < 0.18
        in_reviews = rng.random() < 0.15
        if not (in_crm or in_shop or in_email or in_loyalty or in_support or in_reviews):
            in_shop = True
        p.cookies = [self._cookie() for _ in range(rng.randint(1, 3))]
        p.latent = Latent.draw(
            self.seed, p.person_id, CATEGORIES, BRANDS, SHOE_SIZES, CLOTHING_SIZES
        )
        buying_since = self._ts(p.first_seen)
        if in_shop or in_loyalty:
            store_share = (rng.uniform(0.2, 0.8) if in_shop else 1.0) if in_loyalty else 0.0
            p.purchases = [
                (when, "store" if rng.random() < store_share else "online")
                for when in self._purchase_times(p, buying_since, in_email, in_support)
            ]
        if in_crm:
            yield "crm", self._crm(p, w)
        if in_shop:
            yield "shop", self._shop(p, w, buying_since)
        if in_shop or in_crm or in_email or rng.random() < 0.5:
            for cookie in p.cookies:
                self._web_session(p, cookie, w)
                yield "web", cookie
            # people in the market now visit more, and lately
            recent = self._poisson(
                BEHAVIOUR_BASES["recent_visits"]
                * math.exp(BEHAVIOUR_EFFECTS["recent_visits"] * p.latent.intent)
            )
            for _ in range(min(recent, 12)):
                start = self.as_of - dt.timedelta(days=rng.random() * 60)
                self._web_session(p, rng.choice(p.cookies), w, start=start)
        if in_email:
            yield "email", self._email(p, w)
        if in_loyalty:
            yield "loyalty", self._loyalty(p, w, buying_since)
        if in_support:
            for ticket_id in self._support(p, w):
                yield "support", ticket_id
        if in_reviews:
            for review_id in self._reviews(p, w):
                yield "reviews", review_id

    def _poisson(self, mean: float) -> int:
        count, threshold, product = 0, math.exp(-mean), self.rng.random()
        while product > threshold:
            count += 1
            product *= self.rng.random()
        return count

    def _crm(self, p: Person, w: dict[str, _Writer]) -> str:
        rng = self.rng
        contact_id = f"C-{int(p.person_id[1:]):08d}"
        created = self._ts(p.first_seen)
        first, last = self.name_variant(p)
        email = p.work_email or p.private_email
        if p.account and rng.random() < 0.05:
            email = f"info@{p.account[2]}"  # a shared group mailbox
        addr = self.address_at(p, created)
        row = {
            "contact_id": contact_id,
            "account_id": p.account[0] if p.account else None,
            "salutation": "Herr" if p.gender == "male" else "Frau",
            "first_name": first,
            "last_name": last,
            "email": self.email_variant(email),
            "phone": self.phone_variant(p, p.landline, 0.3),
            "mobile": self.phone_variant(p, p.mobile, 0.5),
            "street": addr.street,
            "postal_code": addr.postal_code,
            "city": addr.city,
            "country": self.country_variant(p.country),
            "birth_date": self.birth_date_text(p, "%Y-%m-%d") if rng.random() < 0.35 else None,
            "job_title": rng.choice(("Einkauf", "Geschäftsführer", "IT-Leiter", "Marketing", None))
            if p.account
            else None,
            "owner": rng.choice(REPS),
            "lead_status": None,
            "lead_source": rng.choice(LEAD_SOURCES),
            "created_at": _local(created),
            "updated_at": _local(created),
        }
        path = self._lead_path(p, contact_id, row)
        updated_later = rng.random() < 0.15 and len(path) > 1
        # updated later: the first export had the status before the last, maybe the old address
        row["lead_status"] = path[-2] if updated_later else path[-1]
        w["crm__contacts"].write(row)
        if updated_later:
            updated = self._ts(created)
            row = dict(row, updated_at=_local(updated), lead_status=path[-1])
            addr = self.address_at(p, updated)
            row.update(street=addr.street, postal_code=addr.postal_code, city=addr.city)
            w["crm__contacts"].write(row)
        entered = self._lead_history(contact_id, path, created, row["owner"], w)
        self._opportunity(p, row, entered, w)
        return contact_id

    def _lead_path(self, p: Person, contact_id: str, row: dict) -> list[str]:
        """The statuses the lead went through, the last its current one: how far it got follows
        its fit and the person's intent (cdp.demo.behaviour), drawn from its own RNG."""
        rng = random.Random(f"{self.seed}:{contact_id}:outcome")
        account = self.account_rows.get(row["account_id"] or "", {})
        value = lead_value(
            p.latent.intent,
            row["job_title"],
            account.get("employees"),
            account.get("industry"),
            row["lead_source"],
            p.country,
        )
        stage = stage_reached(value, rng)
        if stage < len(FUNNEL_STATUSES) - 1 and rng.random() < LEAD_DISQUALIFIED:
            path = [*FUNNEL_STATUSES[: stage + 1], "Unqualified"]
        elif stage == 0:
            path = ["New", *([rng.choice(("Open", "In Progress"))] if rng.random() < 0.6 else [])]
        else:
            path = list(FUNNEL_STATUSES[: stage + 1])
        self.lead_truth.append(
            (
                contact_id,
                p.person_id,
                f"{value:.4f}",
                f"{chance_of_stage(value, 2):.4f}",
                f"{chance_of_stage(value, 5):.4f}",
                stage,
                path[-1],
            )
        )
        return path

    def _lead_history(
        self, contact_id: str, path: list[str], created: dt.datetime, owner: str, w: dict
    ) -> dict[str, dt.datetime]:
        """The status changes that led to the contact's current status (its own RNG, so the
        other exports do not change with it); when it entered each status."""
        rng = random.Random(f"{self.seed}:{contact_id}:history")
        path = list(path)
        if len(path) > 2 and path[1] == "MQL" and rng.random() < 0.5:
            path.insert(1, rng.choice(("Open", "In Progress")))
        when, entered = created, {}
        for step, status in enumerate(path):
            if step:
                when = min(self.as_of, when + dt.timedelta(days=rng.expovariate(1 / 9)))
            entered[status] = when
            late_stage = status in ("SAL", "SQL", "Opportunity", "Customer")
            w["crm__lead_status_history"].write(
                {
                    "change_id": f"{contact_id}-{step + 1}",
                    "contact_id": contact_id,
                    "lead_status": status,
                    "changed_by": owner if late_stage else "Marketing Automation",
                    "changed_at": _local(when),
                }
            )
        return entered

    def _opportunity(self, p: Person, row: dict, entered: dict, w: dict) -> None:
        """The deal of a lead that reached Opportunity: worth more the larger its account, won
        when the lead became a customer, lost when it was disqualified (its own RNG)."""
        opened = entered.get("Opportunity") or entered.get("Customer")
        if opened is None:
            return
        contact_id = row["contact_id"]
        rng = random.Random(f"{self.seed}:{contact_id}:deal")
        account = self.account_rows.get(row["account_id"] or "", {})
        typical = DEAL_SIZES.get(account.get("employees"), DEAL_SIZES[None])
        stage, closed = DEAL_STAGES[0], None
        if "Customer" in entered:
            stage, closed = DEAL_STAGES[1], entered["Customer"]
        elif "Unqualified" in entered:
            stage, closed = DEAL_STAGES[2], entered["Unqualified"]
        w["crm__opportunities"].write(
            {
                "opportunity_id": f"OPP-{contact_id[2:]}",
                "contact_id": contact_id,
                "account_id": row["account_id"],
                "name": f"{account.get('name') or row['last_name']} - {rng.choice(DEAL_NAMES)}",
                "stage": stage,
                "amount": f"{typical * rng.lognormvariate(0, 0.5):.2f}",
                "currency": p.currency,
                "created_at": _local(opened),
                "closed_at": _local(closed) if closed else None,
            }
        )

    def _shop(self, p: Person, w: dict[str, _Writer], created: dt.datetime) -> str:
        rng = self.rng
        # Shopware-style ids: 32 hex characters, stable per person across exports.
        customer_id = hashlib.md5(f"{self.seed}:{p.person_id}".encode()).hexdigest()
        p.shop_customer_id = customer_id
        first, last = self.name_variant(p)
        addr = self.address_at(p, created)
        row = {
            "customer_id": customer_id,
            "email": self.email_variant(p.private_email, 0.0),
            "first_name": first,
            "last_name": last,
            "phone": self.phone_variant(p, p.mobile, 0.4),
            "billing_address": {
                "street": addr.street,
                "zip": addr.postal_code,
                "city": addr.city,
                "country": self.country_variant(p.country),
            },
            "birthday": p.birth_date.isoformat() if rng.random() < 0.3 else None,
            "accepts_marketing": rng.random() < 0.55,
            "created_at": _iso(created),
            "updated_at": _iso(created),
        }
        w["shop__customers"].write(row)
        if rng.random() < 0.1:  # updated account
            updated = self._ts(created)
            addr = self.address_at(p, updated)
            row = dict(
                row,
                updated_at=_iso(updated),
                billing_address=dict(
                    row["billing_address"], street=addr.street, zip=addr.postal_code, city=addr.city
                ),
            )
            w["shop__customers"].write(row)
        for ordered, channel in p.purchases:
            if channel == "online":
                self._order(p, customer_id, ordered, w)
        return customer_id

    def _product(self, p: Person) -> tuple:
        """Most lines come from the buyer's favourite category, many of its favourite brand."""
        latent = p.latent
        if self.rng.random() >= PURCHASES["favourite_category_share"]:
            return self.rng.choice(self.products)
        category = CATEGORIES[latent.favourite_category]
        favourite = self.products_of[category]
        if self.rng.random() < PURCHASES["favourite_brand_share"]:
            favourite = self.products_of.get((category, BRANDS[latent.favourite_brand]), favourite)
        return self.rng.choice(favourite)

    @staticmethod
    def _brand(sku: str) -> str:
        return BRANDS[int(sku[4:]) // len(CATEGORIES) % len(BRANDS)]

    def _size(self, p: Person, category: str) -> str | None:
        """The buyer's own size mostly, a neighbouring one when it is a gift or runs small."""
        sizes = SIZES_OF.get(category)
        if not sizes:
            return None
        own = p.latent.shoe_size if sizes is SHOE_SIZES else p.latent.clothing_size
        if self.rng.random() >= PURCHASES["own_size_share"]:
            own = min(len(sizes) - 1, max(0, own + self.rng.choice((-1, 1))))
        return sizes[own]

    def _order(self, p: Person, customer_id: str, ordered: dt.datetime, w: dict) -> None:
        rng = self.rng
        order_id = f"O-{rng.getrandbits(40):012d}"
        # campaigns win orders in proportion to their spend and their true return
        utm = rng.choices(UTM, ORDER_WEIGHTS)[0] if rng.random() < 0.4 else (None, None, None)
        total = 0.0
        for ln in range(rng.randint(1, 4)):
            sku, name, category, price = self._product(p)
            qty = rng.choice((1, 1, 1, 2, 3))
            total += qty * price
            w["shop__order_lines"].write(
                {
                    "order_line_id": f"{order_id}-{ln + 1}",
                    "order_id": order_id,
                    "sku": sku,
                    "product_name": name,
                    "category": category,
                    "brand": self._brand(sku),
                    "size": self._size(p, category),
                    "quantity": qty,
                    "unit_price": f"{price:.2f}",
                }
            )
        w["shop__orders"].write(
            {
                "order_id": order_id,
                "customer_id": customer_id,
                "email": p.private_email,
                "status": rng.choices(ORDER_STATUSES, (20, 70, 6, 4))[0],
                "currency": p.currency,
                "total_amount": f"{total:.2f}",
                "utm_source": utm[0],
                "utm_medium": utm[1],
                "utm_campaign": utm[2],
                "ordered_at": _iso(ordered),
            }
        )

    def _web_session(
        self,
        p: Person | None,
        cookie: str,
        w: dict,
        anonymous: bool = False,
        start: dt.datetime | None = None,
    ) -> None:
        rng = self.rng
        intent = p.latent.intent if p and p.latent else 0.0
        contact_page = shifted(BEHAVIOUR_BASES["contact_page_view"], "contact_page_view", intent)
        start = start or self._ts(
            p.first_seen if p else self.as_of - dt.timedelta(days=HISTORY_DAYS)
        )
        country = p.country if p else rng.choices(self.country_codes, self.country_weights)[0]
        # visits follow spend (traffic bought), not what it earns
        utm = rng.choices(UTM, VISIT_WEIGHTS)[0] if rng.random() < 0.35 else (None, None, None)
        device = rng.choice(("desktop", "mobile", "mobile", "tablet"))
        city = p.address.city if p else rng.choice(self.pools[country]["place"])[1]
        context = {
            "page": {"path": "/", "referrer": rng.choice(REFERRERS)},
            "campaign": {"source": utm[0], "medium": utm[1], "name": utm[2]},
            "device": {"type": device},
            "geo": {"country": country, "city": city},
            "locale": "de-DE" if country in ("DE", "AT", "CH") else "en-US",
        }
        ts = start
        for i in range(rng.randint(1, 6)):
            ts += dt.timedelta(seconds=rng.randint(5, 400))
            ctx = dict(
                context,
                page={
                    "path": "/kontakt" if rng.random() < contact_page else rng.choice(PAGES),
                    "referrer": context["page"]["referrer"] if i == 0 else "",
                },
            )
            w["web__events"].write(
                {
                    "event_id": f"{rng.getrandbits(64):016x}",
                    "anonymous_id": cookie,
                    "user_id": None,
                    "type": "page",
                    "event": "page_view",
                    "timestamp": _iso_ms(ts),
                    "traits": None,
                    "context": ctx,
                }
            )
        if anonymous or p is None:
            return
        if p.shop_customer_id and rng.random() < 0.6:
            ts += dt.timedelta(seconds=rng.randint(5, 120))
            w["web__events"].write(
                {
                    "event_id": f"{rng.getrandbits(64):016x}",
                    "anonymous_id": cookie,
                    "user_id": str(p.shop_customer_id),
                    "type": "identify",
                    "event": "login",
                    "timestamp": _iso_ms(ts),
                    "traits": {"email": self.email_variant(p.private_email, 0.1)},
                    "context": context,
                }
            )
        elif rng.random() < shifted(BEHAVIOUR_BASES["form_submission"], "form_submission", intent):
            ts += dt.timedelta(seconds=rng.randint(5, 120))
            first, last = self.name_variant(p)
            w["web__events"].write(
                {
                    "event_id": f"{rng.getrandbits(64):016x}",
                    "anonymous_id": cookie,
                    "user_id": None,
                    "type": "track",
                    "event": "form_submit",
                    "timestamp": _iso_ms(ts),
                    "traits": {
                        "email": self.email_variant(p.work_email or p.private_email, 0.0),
                        "first_name": first,
                        "last_name": last,
                        "form": rng.choice(("newsletter", "kontakt", "whitepaper", "demo")),
                    },
                    "context": context,
                }
            )

    def _email(self, p: Person, w: dict[str, _Writer]) -> str:
        rng = self.rng
        sub_id = f"{rng.getrandbits(48):012x}"
        created = self._ts(p.first_seen)
        status = rng.choices(SUBSCRIPTION_STATUSES, (78, 14, 3, 5))[0]
        first, last = self.name_variant(p) if rng.random() < 0.6 else (None, None)
        email = self.email_variant(p.private_email, 0.0)
        row = {
            "subscriber_id": sub_id,
            "email": email,
            "first_name": first,
            "last_name": last,
            "language": "de" if p.country in ("DE", "AT", "CH") else "en",
            "status": status,
            "consent_marketing": "true" if status in ("subscribed", "pending") else "false",
            "consent_source": rng.choice(("double_opt_in", "checkout", "form", "import")),
            "consent_at": _iso_offset(created),
            "created_at": _iso_offset(created),
            "updated_at": _iso_offset(created),
        }
        w["email__subscribers"].write(row)
        opens = shifted(BEHAVIOUR_BASES["email_open"], "email_open", p.latent.intent)
        clicks = shifted(BEHAVIOUR_BASES["email_click"], "email_click", p.latent.intent)
        for _ in range(rng.randint(2, 8)):
            cid, cname = rng.choice(CAMPAIGNS)
            sent = self._ts(created)
            self._activity(w, sub_id, email, cid, cname, "send", None, sent)
            if status == "cleaned" and rng.random() < 0.5:
                self._activity(w, sub_id, email, cid, cname, "bounce", None, sent)
                continue
            if rng.random() < opens:
                opened = sent + dt.timedelta(minutes=rng.randint(1, 3000))
                self._activity(w, sub_id, email, cid, cname, "open", None, opened)
                if rng.random() < clicks:
                    self._activity(
                        w,
                        sub_id,
                        email,
                        cid,
                        cname,
                        "click",
                        f"https://shop.example.de{rng.choice(PAGES)}?utm_source="
                        f"newsletter&utm_medium=email&utm_campaign={cid}",
                        opened + dt.timedelta(seconds=rng.randint(2, 300)),
                    )
        if status == "unsubscribed":
            self._activity(w, sub_id, email, "", "", "unsubscribe", None, self._ts(created))
        return sub_id

    def _activity(self, w, sub_id, email, cid, cname, kind, url, when) -> None:
        w["email__activity"].write(
            {
                "activity_id": f"{self.rng.getrandbits(56):014x}",
                "subscriber_id": sub_id,
                "email": email,
                "campaign_id": cid,
                "campaign_name": cname,
                "activity_type": kind,
                "url": url,
                "occurred_at": _iso(when),
            }
        )

    def _loyalty(self, p: Person, w: dict[str, _Writer], issued: dt.datetime) -> str:
        rng = self.rng
        digits = f"4000{int(p.person_id[1:]):09d}"
        first, last = self.name_variant(p)
        addr = self.address_at(p, issued)
        w["loyalty__cards"].write(
            {
                "card_number": digits
                if rng.random() < 0.8
                else f"{digits[:4]} {digits[4:8]} {digits[8:]}",
                "holder_first_name": first,
                "holder_last_name": last,
                "email": self.email_variant(p.private_email, 0.4),
                "phone": self.phone_variant(p, p.landline, 0.3),
                "birth_date": self.birth_date_text(p, "%d.%m.%Y") if rng.random() < 0.7 else None,
                "postal_code": addr.postal_code,
                "city": addr.city,
                "country": self.country_variant(p.country),
                "home_store_id": f"S{rng.randint(1, 40):03d}",
                "tier": rng.choices(LOYALTY_TIERS, (60, 25, 12, 3))[0],
                "issued_at": _local(issued),
            }
        )
        for purchased, channel in p.purchases:
            if channel != "store":
                continue
            w["loyalty__purchases"].write(
                {
                    "purchase_id": f"POS-{rng.getrandbits(40):012d}",
                    "card_number": digits,
                    "store_id": f"S{rng.randint(1, 40):03d}",
                    "amount": f"{rng.uniform(5, 300):.2f}",
                    "currency": p.currency,
                    "items": rng.randint(1, 8),
                    "purchased_at": _local(purchased),
                }
            )
        return digits

    def _support(self, p: Person, w: dict[str, _Writer]) -> Iterator[str]:
        rng = self.rng
        for _ in range(rng.randint(1, 3)):
            ticket_id = f"T-{rng.getrandbits(36):011d}"
            created = self._ts(p.first_seen)
            first, last = self.name_variant(p)
            name = f"{last.strip()}, {first.strip()}" if rng.random() < 0.3 else f"{first} {last}"
            status = rng.choices(TICKET_STATUSES, (15, 10, 25, 50))[0]
            w["support__tickets"].write(
                {
                    "ticket_id": ticket_id,
                    "requester_email": self.email_variant(p.private_email, 0.03),
                    "requester_name": name,
                    "requester_phone": self.phone_variant(p, p.mobile, 0.6),
                    "subject": rng.choice(TICKET_SUBJECTS),
                    "priority": rng.choices(TICKET_PRIORITIES, (20, 55, 20, 5))[0],
                    "status": status,
                    "channel": rng.choice(("email", "telefon", "chat", "formular")),
                    "created_at": _german(created),
                    "updated_at": _german(self._ts(created, 30)),
                }
            )
            yield ticket_id

    def _reviews(self, p: Person, w: dict[str, _Writer]) -> Iterator[str]:
        rng = self.rng
        for _ in range(rng.randint(1, 2)):
            review_id = f"R-{rng.getrandbits(36):011d}"
            first, last = self.name_variant(p)
            w["reviews__reviews"].write(
                {
                    "review_id": review_id,
                    "product_sku": rng.choice(self.products)[0],
                    "rating": rng.choices((1, 2, 3, 4, 5), (5, 7, 15, 33, 40))[0],
                    "title": rng.choice(
                        (
                            "Super!",
                            "Passt gut",
                            "Leider enttäuscht",
                            "Top Qualität",
                            "Geht so",
                            "Sehr zufrieden",
                        )
                    ),
                    "reviewer_name": f"{first.strip()} {last.strip()[:1]}."
                    if rng.random() < 0.6
                    else f"{first} {last}",
                    "reviewer_email": self.email_variant(p.private_email, 0.2),
                    "verified_purchase": rng.random() < 0.7,
                    "submitted_at": _iso(self._ts(p.first_seen)),
                    # a field the declaration does not name (kept in _extra_values)
                    "helpful_votes": int(review_id[2:]) % 23,
                }
            )
            yield review_id


def _berlin(ts: dt.datetime) -> dt.datetime:
    """Generated instants are UTC; some systems export Berlin wall-clock time."""
    return ts.replace(tzinfo=dt.UTC).astimezone(BERLIN)


def _local(ts: dt.datetime) -> str:
    return _berlin(ts).strftime("%Y-%m-%d %H:%M:%S")


def _iso(ts: dt.datetime) -> str:
    return ts.isoformat(timespec="seconds") + "Z"


def _iso_ms(ts: dt.datetime) -> str:
    return ts.isoformat(timespec="milliseconds") + "Z"


def _iso_offset(ts: dt.datetime) -> str:
    return _berlin(ts).isoformat(timespec="seconds")


def _german(ts: dt.datetime) -> str:
    return _berlin(ts).strftime("%d.%m.%Y %H:%M")


def demo_tables() -> tuple[Table, ...]:
    """The tables of the systems the generator plays, as their declarations give them."""
    return tuple(t for t in declarations().tables if t.source in DEMO_SYSTEMS)
