"""A labelled data set this project's demo generator did not write: US people (Faker's en_US
names, addresses and birth dates) in two systems with habits of their own, corrupted by a model
of its own, so identity resolution is measured away from both the demo and FEBRL.

- `sales_crm`: one full-name column, "Family, Given" or "Given [Middle] Family"; landline or
  mobile; US dates (MM/DD/YYYY); about a third without a birth date.
- `webstore`: given and family name apart; a mobile; ISO dates, mostly missing.
- People appear 0 to 2 times in each system. A record's name has a typo (about 13% of given
  names, 12% of family names) or a nickname from the `nicknames` package (an English list this
  project's matcher does not load); some people moved, some gave a work email, some dates have
  day and month swapped.
- 15% of people live in households of 2 to 4: one family name, one address, one landline, each
  their own given name, birth date and email. Namesakes come from Faker's name frequencies.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from importlib import resources
from pathlib import Path

import yaml

SYSTEMS = ("sales_crm", "webstore")

_DOMAINS = ("gmail.com", "yahoo.com", "hotmail.com", "aol.com", "outlook.com", "icloud.com")

_DECLARATIONS = {
    "sales_crm": [
        {"name": "contact_id", "type": "id", "role": "record_id"},
        {"name": "name", "role": "full_name"},
        {"name": "email", "role": "email"},
        {"name": "phone", "role": "phone"},
        {"name": "address", "role": "street"},
        {"name": "city", "role": "city"},
        {"name": "state", "role": "region"},
        {"name": "zip", "role": "postal_code"},
        {"name": "dob", "type": "date", "format": "%m/%d/%Y", "role": "birth_date"},
    ],
    "webstore": [
        {"name": "customer_no", "type": "id", "role": "record_id"},
        {"name": "first", "role": "given_name"},
        {"name": "last", "role": "family_name"},
        {"name": "mail", "role": "email"},
        {"name": "mobile", "role": "mobile_phone"},
        {"name": "ship_street", "role": "street"},
        {"name": "ship_city", "role": "city"},
        {"name": "ship_zip", "role": "postal_code"},
        {"name": "birthday", "type": "date", "role": "birth_date"},
    ],
}


def _nicknames() -> dict[str, list[str]]:
    """Given name -> its nicknames, from the `nicknames` package's curated English list."""
    found: dict[str, list[str]] = {}
    with resources.files("nicknames").joinpath("names.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["relationship"] == "has_nickname":
                found.setdefault(row["name1"], []).append(row["name2"])
    return found


class _Generator:
    def __init__(self, seed: int):
        from faker import Faker

        self.rng = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.nicknames = _nicknames()

    def typo(self, text: str) -> str:
        if len(text) < 3:
            return text
        at, kind = self.rng.randrange(1, len(text) - 1), self.rng.random()
        letter = self.rng.choice("aeiourstnl")
        if kind < 0.25:
            return text[:at] + text[at + 1] + text[at] + text[at + 2 :]
        if kind < 0.5:
            return text[:at] + text[at + 1 :]
        if kind < 0.75:
            return text[:at] + letter + text[at:]
        return text[:at] + letter + text[at + 1 :]

    def address(self) -> dict:
        fake = self.fake
        return {
            "street": fake.street_address(),
            "city": fake.city(),
            "state": fake.state_abbr(),
            "zip": fake.zipcode(),
        }

    def person(self, household: dict | None = None) -> dict:
        fake, rng = self.fake, self.rng
        first = fake.first_name_female() if rng.random() < 0.5 else fake.first_name_male()
        last = household["last"] if household else fake.last_name()
        person = {
            "first": first,
            "middle": fake.first_name() if rng.random() < 0.4 else "",
            "last": last,
            **(household["home"] if household else self.address()),
            "landline": household["landline"] if household else fake.numerify("(%##) %##-####"),
            "mobile": fake.numerify("%##-%##-####"),
            "dob": fake.date_of_birth(minimum_age=18, maximum_age=85),
        }
        habit, f, lo = rng.random(), first.lower(), last.lower()
        if habit < 0.3:
            local = f"{f}.{lo}"
        elif habit < 0.5:
            local = f"{f[0]}{lo}"
        elif habit < 0.7:
            local = f"{f}{lo}{rng.randint(1, 99)}"
        else:
            local = fake.user_name()
        person["email"] = f"{local}@{rng.choice(_DOMAINS)}"
        person["work_email"] = f"{f[0]}{lo}@{fake.domain_name()}"
        return person

    def people(self, count: int) -> list[dict]:
        people: list[dict] = []
        while len(people) < count:
            if self.rng.random() < 0.15:
                head = self.person()
                home = {k: head[k] for k in ("street", "city", "state", "zip")}
                household = {"last": head["last"], "home": home, "landline": head["landline"]}
                people += [head] + [self.person(household) for _ in range(self.rng.randint(1, 3))]
            else:
                people.append(self.person())
        return people[:count]

    def variant(self, person: dict) -> dict:
        """One system's record of the person, with that system's errors."""
        rng, v = self.rng, dict(person)
        given = v["first"].lower()
        roll = rng.random()
        if roll < 0.12 and given in self.nicknames:
            v["first"] = rng.choice(self.nicknames[given]).title()
        elif roll < 0.25:
            v["first"] = self.typo(v["first"])
        if rng.random() < 0.12:
            v["last"] = self.typo(v["last"])
        if rng.random() < 0.08:
            v.update(self.address())  # moved
        elif rng.random() < 0.08:
            v["street"] = self.typo(v["street"])
        if rng.random() < 0.15:
            v["email"] = person["work_email"]
        elif rng.random() < 0.05:
            local, domain = v["email"].split("@")
            v["email"] = f"{self.typo(local)}@{domain}"
        born: dt.date = v["dob"]
        if rng.random() < 0.04 and born.day <= 12:
            v["dob"] = born.replace(day=born.month, month=born.day)
        return v

    def crm_row(self, record_id: str, v: dict) -> dict:
        rng = self.rng
        if rng.random() < 0.5:
            name = f"{v['last']}, {v['first']}"
        else:
            middle = f"{v['middle']} " if v["middle"] and rng.random() < 0.5 else ""
            name = f"{v['first']} {middle}{v['last']}"
        phone = v["landline"] if rng.random() < 0.5 else v["mobile"]
        return {
            "contact_id": record_id,
            "name": name,
            "email": v["email"] if rng.random() > 0.1 else "",
            "phone": phone if rng.random() > 0.2 else "",
            "address": v["street"],
            "city": v["city"],
            "state": v["state"],
            "zip": v["zip"] if rng.random() > 0.1 else "",
            "dob": v["dob"].strftime("%m/%d/%Y") if rng.random() > 0.3 else "",
        }

    def shop_row(self, record_id: str, v: dict) -> dict:
        rng = self.rng
        return {
            "customer_no": record_id,
            "first": v["first"],
            "last": v["last"],
            "mail": v["email"],
            "mobile": v["mobile"] if rng.random() > 0.3 else "",
            "ship_street": v["street"] if rng.random() > 0.15 else "",
            "ship_city": v["city"],
            "ship_zip": v["zip"],
            "birthday": v["dob"].isoformat() if rng.random() > 0.6 else "",
        }


def write_us_households(out: Path, people: int = 3000, seed: int = 7) -> dict:
    """sources/<system>.yml, landing/<system>/people/people.csv and landing/ground_truth.csv for
    `people` generated people. Returns counts."""
    generator = _Generator(seed)
    rows: dict[str, list[dict]] = {system: [] for system in SYSTEMS}
    truth: list[tuple[str, str, int]] = []
    for person_id, person in enumerate(generator.people(people)):
        for system, prefix, make in (
            ("sales_crm", "C", generator.crm_row),
            ("webstore", "S", generator.shop_row),
        ):
            for _ in range(generator.rng.choice([0, 1, 1, 1, 2])):
                record_id = f"{prefix}{len(rows[system]) + 1:06d}"
                rows[system].append(make(record_id, generator.variant(person)))
                truth.append((system, record_id, person_id))
    (out / "sources").mkdir(parents=True, exist_ok=True)
    for system, system_rows in rows.items():
        folder = out / "landing" / system / "people"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "people.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=[c["name"] for c in _DECLARATIONS[system]])
            writer.writeheader()
            writer.writerows(system_rows)
        declaration = {
            "system": system,
            "description": f"US people, generated (cdp.identity.synthetic_us): {system}.",
            "default_country": "US",
            "tables": [
                {
                    "name": "people",
                    "entity": "person",
                    "format": "csv",
                    "columns": _DECLARATIONS[system],
                }
            ],
        }
        (out / "sources" / f"{system}.yml").write_text(
            yaml.safe_dump(declaration, sort_keys=False), encoding="utf-8"
        )
    with (out / "landing" / "ground_truth.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "source_record_id", "person_id"])
        writer.writerows(truth)
    return {"records": len(truth), "people": len({t[2] for t in truth})}
