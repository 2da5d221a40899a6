"""The demo-data generator: deterministic, streaming, and as messy as real exports."""

import contextlib
import csv
import datetime as dt
import hashlib
import json
import re
import tracemalloc
from collections import Counter
from pathlib import Path

from cdp.demo.generate import (
    DEAL_STAGES,
    EXPORT_ENCODINGS,
    LEAD_STATUSES,
    LOYALTY_TIERS,
    OMITTED_COLUMNS,
    ORDER_STATUSES,
    SUBSCRIPTION_STATUSES,
    TICKET_PRIORITIES,
    TICKET_STATUSES,
    Generator,
    demo_tables,
)
from cdp.ingest.sources import table as source_table
from tests.conftest import TEST_PEOPLE, generate


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    generate(tmp_path / "a", people=500, seed=3)
    generate(tmp_path / "b", people=500, seed=3)
    generate(tmp_path / "c", people=500, seed=4)
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert a == b
    # one file per table, the identity ground truth and the true drivers and effects
    assert len(a) == len(demo_tables()) + 4
    assert a.keys() == c.keys()
    assert all(a[f] != c[f] for f in a)


def test_every_table_is_written_in_its_systems_format(landing):
    for table in demo_tables():
        files = list((landing / table.source / table.name).glob(f"*.{table.extension}"))
        assert len(files) == 1, table.key
        text = files[0].read_text(encoding=EXPORT_ENCODINGS.get(table.key, "utf-8"))
        if table.format == "csv":
            header = next(csv.reader([text.splitlines()[0]], delimiter=table.delimiter))
            omitted = OMITTED_COLUMNS.get(table.key, ())
            assert header == [c for c in table.column_names if c not in omitted]
        elif table.format == "json":
            assert text.startswith("[\n") and text.rstrip().endswith("]")
        else:
            first = json.loads(text.splitlines()[0])
            assert set(first) == set(table.column_names)


def test_ground_truth_sits_outside_the_landing_tables(landing):
    truth = landing / "ground_truth.csv"
    rows = list(csv.DictReader(truth.open(encoding="utf-8")))
    assert {r["source"] for r in rows} == {
        "crm",
        "shop",
        "web",
        "email",
        "loyalty",
        "support",
        "reviews",
    }
    assert len({r["person_id"] for r in rows if r["person_id"].startswith("P")}) == TEST_PEOPLE
    for table in demo_tables():
        assert not list((landing / table.source / table.name).glob("ground_truth*"))


def _lines(landing: Path, source: str, name: str) -> list[str]:
    folder = landing / source / name
    encoding = EXPORT_ENCODINGS.get(f"{source}__{name}", "utf-8")
    return next(folder.iterdir()).read_text(encoding=encoding).splitlines()


def _truth(landing: Path, name: str) -> list[dict]:
    return list(csv.DictReader((landing / name).open(encoding="utf-8")))


def _json_rows(landing: Path, source: str, name: str) -> list[dict]:
    rows = []
    for line in _lines(landing, source, name):
        with contextlib.suppress(json.JSONDecodeError):  # a row broken on purpose
            rows.append(json.loads(line))
    return rows


def test_the_true_drivers_are_written_and_the_exports_follow_them(landing):
    """What the models are checked against: the exports hold the purchases, sizes and lead
    outcomes the truth files name, and the latent intent shows in behaviour a CDP can see."""
    effects = json.loads((landing / "true_effects.json").read_text(encoding="utf-8"))
    assert effects["lead_funnel_ordered_logit"]["effects"]["intent"] > 0
    people = {row["person_id"]: row for row in _truth(landing, "true_behaviour.csv")}
    assert len(people) == TEST_PEOPLE

    orders = {row.get("order_id") for row in _json_rows(landing, "shop", "orders")}
    store = {r.get("purchase_id") for r in csv.DictReader(_lines(landing, "loyalty", "purchases"))}
    exported = len(orders - {None}) + len(store - {None, ""})
    promised = sum(int(row["purchases"]) for row in people.values())
    assert abs(exported - promised) <= 0.01 * promised  # broken rows lose or cut a few ids

    latest = {}
    for row in csv.DictReader(_lines(landing, "crm", "contacts")):
        latest[row["contact_id"]] = row["lead_status"]  # a later row is the update
    leads = _truth(landing, "true_leads.csv")
    same = sum(latest.get(lead["contact_id"]) == lead["final_status"] for lead in leads)
    assert leads and same >= 0.99 * len(leads)

    # intent -> email clicks, through the subscriber's person in the ground truth
    person_of = {
        row["source_record_id"]: row["person_id"]
        for row in _truth(landing, "ground_truth.csv")
        if row["source"] == "email"
    }
    clicks = Counter(
        person_of.get(row["subscriber_id"])
        for row in csv.DictReader(_lines(landing, "email", "activity"))
        if row["activity_type"] == "click"
    )
    # each buyer's own shoe size is the one most of their shoe lines carry
    buyer_of = {
        row["source_record_id"]: row["person_id"]
        for row in _truth(landing, "ground_truth.csv")
        if row["source"] == "shop"
    }
    person_of_order = {
        row.get("order_id"): buyer_of.get(row.get("customer_id"))
        for row in _json_rows(landing, "shop", "orders")
    }
    shoe_sizes: dict[str, Counter] = {}
    for line in _json_rows(landing, "shop", "order_lines"):
        buyer = person_of_order.get(line.get("order_id"))
        if buyer and line.get("category") == "Schuhe":
            shoe_sizes.setdefault(buyer, Counter())[line.get("size")] += 1
    frequent = [pid for pid, sizes in shoe_sizes.items() if sum(sizes.values()) >= 4]
    own = sum(shoe_sizes[pid].most_common(1)[0][0] == people[pid]["shoe_size"] for pid in frequent)
    assert len(frequent) > 50 and own >= 0.9 * len(frequent)

    subscribers = sorted(set(person_of.values()), key=lambda pid: float(people[pid]["intent"]))
    quarter = len(subscribers) // 4
    low = sum(clicks[pid] for pid in subscribers[:quarter]) / quarter
    high = sum(clicks[pid] for pid in subscribers[-quarter:]) / quarter
    assert high > 2 * low


def test_data_is_messy_like_real_life(landing):
    contacts = list(csv.DictReader(_lines(landing, "crm", "contacts"), delimiter=","))
    customers = [json.loads(x) for x in _lines(landing, "shop", "customers") if x.endswith("}")]
    tickets = list(csv.DictReader(_lines(landing, "support", "tickets"), delimiter=";"))
    all_names = {r["first_name"] for r in contacts} | {c.get("first_name") for c in customers}
    all_last = {r["last_name"] for r in contacts} | {c.get("last_name") for c in customers}
    emails = [r["email"] for r in contacts] + [c.get("email") or "" for c in customers]
    phones = [r["phone"] for r in contacts if r["phone"]]

    # nicknames and umlaut spellings
    assert {"Hans", "Sepp", "Bob", "Kathi"} & all_names
    assert {"Müller", "Mueller", "Muller"} <= all_last or {"Schröder", "Schroeder"} <= all_last
    # case and whitespace in emails, junk and shared identifiers
    assert any(e != e.strip() for e in emails)
    assert any(e.strip() and e.strip() != e.strip().lower() for e in emails)
    assert any(e.startswith("info@") for e in emails)
    assert any(e in ("test@test.de", "keine@angabe.de", "test") for e in emails)
    # many phone formats, junk numbers
    shapes = {re.sub(r"\d", "9", p)[:6] for p in phones}
    assert len(shapes) >= 8
    assert any(set(re.sub(r"\D", "", p)) <= {"0"} for p in phones)
    # "Last, First" in the support desk
    assert any("," in t["requester_name"] for t in tickets)
    # missing values
    assert sum(1 for r in contacts if not r["email"]) > 0
    # updated records: the same contact exported twice with different versions
    versions = Counter(r["contact_id"] for r in contacts)
    updated = [cid for cid, n in versions.items() if n > 1]
    assert updated
    assert len({r["updated_at"] for r in contacts if r["contact_id"] == updated[0]}) >= 1
    # mess the pipeline was not written for: countries beyond the shop's markets, impossible
    # dates, ids with letters, an export without one of its declared optional columns
    countries = {r["country"] for r in contacts} | {
        (c.get("billing_address") or {}).get("country") for c in customers
    }
    assert countries & {"Sverige", "Australien", "AUS", "Türkiye", "Turkey"}
    assert {r["birth_date"] for r in contacts} & {"0000-00-00"} or any(
        r["birth_date"].endswith("-02-30") for r in contacts
    )
    assert all(re.fullmatch(r"[0-9a-f]{32}", str(c["customer_id"])) for c in customers[:50])
    cards = csv.DictReader(_lines(landing, "loyalty", "cards"), delimiter=",")
    assert "home_store_id" not in cards.fieldnames
    assert "home_store_id" in source_table("loyalty__cards").column_names


def test_the_generators_vocabulary_is_what_the_declarations_accept():
    """The generator plays the exporting systems; sources/*.yml says what the pipeline accepts.
    The two are written apart, so this can fail when one changes."""
    pairs = {
        ("crm__contacts", "lead_status"): LEAD_STATUSES,
        ("crm__lead_status_history", "lead_status"): LEAD_STATUSES,
        ("crm__opportunities", "stage"): DEAL_STAGES,
        ("shop__orders", "status"): ORDER_STATUSES,
        ("email__subscribers", "status"): SUBSCRIPTION_STATUSES,
        ("loyalty__cards", "tier"): LOYALTY_TIERS,
        ("support__tickets", "priority"): TICKET_PRIORITIES,
        ("support__tickets", "status"): TICKET_STATUSES,
    }
    for (key, column), written in pairs.items():
        accepted = source_table(key).accepted_values(column)
        assert accepted, (key, column)
        assert set(written) <= set(accepted), (key, column, set(written) - set(accepted))


def test_exact_duplicates_and_malformed_rows_are_injected(landing):
    events = _lines(landing, "web", "events")
    dupes = sum(n - 1 for n in Counter(events).values() if n > 1)
    assert dupes > 0.005 * len(events)
    broken = 0
    for line in events:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            broken += 1
    assert broken > 0


def test_people_move_between_exports(landing):
    truth = list(csv.DictReader((landing / "ground_truth.csv").open(encoding="utf-8")))
    person_of = {(r["source"], r["source_record_id"]): r["person_id"] for r in truth}
    contacts = list(csv.DictReader(_lines(landing, "crm", "contacts")))
    cards = list(csv.DictReader(_lines(landing, "loyalty", "cards")))
    postal = {}
    for c in contacts:
        postal.setdefault(person_of.get(("crm", c["contact_id"])), set()).add(c["postal_code"])
    for c in cards:
        digits = re.sub(r"\D", "", c["card_number"])
        postal.setdefault(person_of.get(("loyalty", digits)), set()).add(c["postal_code"])
    assert sum(1 for p, codes in postal.items() if p and len(codes) > 1) > 0


def test_generation_streams_instead_of_holding_rows(tmp_path):
    tracemalloc.start()
    stats = generate(tmp_path, people=10_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert stats.total_rows > 180_000
    # Holding the rows would take hundreds of MB; pools and the email set stay small.
    assert peak < 30 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"


def test_a_purchase_gap_past_the_history_ends_the_purchases_instead_of_overflowing(tmp_path):
    """A slow buyer's drawn gap can outrun what a datetime holds (48,076 people at seed 1 met
    one and the 1M bench stopped); a gap past the as-of time means no further purchase."""
    generator = Generator(10, seed=1, out=tmp_path)
    start = generator.as_of - dt.timedelta(days=30)
    assert generator._within_history(start, 29.5) == start + dt.timedelta(days=29.5)
    assert generator._within_history(start, 30.0) is None
    assert generator._within_history(start, 1e12) is None  # past year 9999
