"""The matcher configures itself from the keys the data fills: FEBRL1 (public, labelled) with
only names and birth dates (no postcode, no email, no address) trains and links."""

import csv
import re

import pandas as pd

from cdp.identity.benchmarks import _febrl_folder
from cdp.identity.matching import _blocking_rules, present_columns, score_pairs, trained_model
from cdp.ingest.reference import MACRO_PATH, render_macro


def _febrl1_names_and_dates() -> pd.DataFrame:
    with (_febrl_folder() / "dataset1.csv").open(encoding="utf-8", newline="") as fh:
        rows = [{k.strip(): v.strip() for k, v in row.items()}
                for row in csv.DictReader(fh, skipinitialspace=True)]  # fmt: skip
    frame = pd.DataFrame(
        {
            "record_key": [r["rec_id"] for r in rows],
            "source": "febrl1",
            "first_name_key": [r["given_name"] or None for r in rows],
            "last_name_key": [r["surname"] or None for r in rows],
            "birth_date": [
                f"{d[:4]}-{d[4:6]}-{d[6:]}" if re.fullmatch(r"\d{8}", d) else None
                for d in (r["date_of_birth"] for r in rows)
            ],
        }
    )
    for column in ("postal_code", "city_key", "street_key", "house_number", "email_local",
                   "phone", "mobile_phone", "other_id"):  # fmt: skip
        frame[column] = None
    return frame


def test_names_and_dates_alone_train_and_link():
    frame = _febrl1_names_and_dates()
    present = present_columns(frame)
    assert present == ("first_name_key", "last_name_key", "birth_date")
    assert not any("postal_code" in rule or "email" in rule for rule in _blocking_rules(present))
    model = trained_model(frame)
    assert 0 < model["probability_two_random_records_match"] < 0.01  # estimated, not 1/5000
    pairs = score_pairs(frame, floor=0.5, model=model)
    linked = pairs[pairs.match_probability >= 0.95]
    person = frame.record_key.str.extract(r"rec-(\d+)-")[0]
    people = dict(zip(frame.record_key, person, strict=True))
    keys = zip(linked.record_key_l, linked.record_key_r, strict=True)
    correct = sum(people[a] == people[b] for a, b in keys)
    true_pairs = 500  # FEBRL1: 500 originals, one duplicate each
    precision, recall = correct / len(linked), correct / true_pairs
    # names and dates alone, many of them corrupted: most pairs, and no false ones
    assert precision >= 0.95 and recall >= 0.6, (precision, recall)


def test_the_country_reference_is_generated_from_the_libraries():
    assert MACRO_PATH.read_text(encoding="utf-8") == render_macro(), (
        "run: python -m cdp.ingest.reference"
    )
