"""Probabilistic record matching with Splink (Fellegi-Sunter, m/u trained unsupervised by EM).

Input: the rows of `int_match_candidates` (record_key plus comparison keys). Output: one row per
compared pair at or above a probability floor, with the match probability and the fields that
agreed, for the identity graph (above the match threshold) and the review queue (below it).
Splink runs on its own in-memory DuckDB so its work tables never touch the warehouse.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from cdp.core.sql import quote, table_exists
from cdp.core.warehouse import duckdb_config

PAIR_COLUMNS = [
    "record_key_l",
    "record_key_r",
    "match_probability",
    "match_weight",
    "agreed_fields",
    "disagreed_fields",
]
_PAIR_TYPES = {"match_probability": "float64", "match_weight": "float64"}


def no_pairs() -> pd.DataFrame:
    """No pairs, typed: untyped empty columns reach the warehouse as NULL-typed columns, which
    break the contracts downstream (a source with no candidates, or none alike)."""
    return pd.DataFrame(
        {column: pd.Series(dtype=_PAIR_TYPES.get(column, "string")) for column in PAIR_COLUMNS}
    )


# The comparison keys of int_match_candidates; `phones` is the array of phone and mobile.
COMPARED = (
    "first_name_key",
    "last_name_key",
    "full_name_key",
    "email_name_key",
    "birth_date",
    "postal_code",
    "city_key",
    "street_key",
    "house_number",
    "email_local",
    "phones",
    "other_id",
)
# What is compared: the keys, with the address parts as one comparison.
COMPARISONS = (
    "first_name_key",
    "last_name_key",
    "spelled_name",
    "birth_date",
    "address",
    "email_local",
    "phones",
    "other_id",
)
# A key filled on fewer candidates than this is not compared or blocked on: a source without
# postcodes must not stop training, and a nearly empty column teaches EM nothing.
MIN_FILLED = 0.005


ADDRESS_PARTS = ("street_key", "house_number", "postal_code", "city_key")
NAME_KEYS = ("first_name_key", "last_name_key")
SPELLED_NAME_KEYS = ("full_name_key", "email_name_key")


def _spelled_name_comparison():
    """The whole name as written or as an email's local part spells it, compared across the two:
    evidence only where the name fields cannot speak (one record has no name, or two systems
    split one name otherwise), so a name and the address made from it never count twice."""
    import splink.comparison_library as cl

    spellings = {side: [f"full_name_key_{side}", f"email_name_key_{side}"] for side in ("l", "r")}
    # Two email addresses alone are not compared: "mrogge" is a household's as much as a name.
    pairs = [
        (a, b)
        for a in spellings["l"]
        for b in spellings["r"]
        if not (a.startswith("email") and b.startswith("email"))
    ]
    names_agree = " and ".join(f"{k}_l = {k}_r" for k in NAME_KEYS)
    nothing = " or ".join(
        "(" + " and ".join(f"{c} is null" for c in columns) + ")" for columns in spellings.values()
    )
    # A side with neither name. Not one that lacks only the family name (a review signed
    # "Tracy"): there the given name agreed already, and the spelling counted it again; at 1M
    # source records such pairs made 306 of 1,245 wrong links.
    nameless = " or ".join(
        "(" + " and ".join(f"{k}_{side} is null" for k in NAME_KEYS) + ")" for side in ("l", "r")
    )
    # With names on both sides the name comparisons speak (a spelling that agreed on top of
    # them counted a similar name twice: at 10M source records most wrong links); only a name
    # split otherwise is left to this one.
    split = f"coalesce(full_name_key_l = full_name_key_r and not ({names_agree}), false)"
    return cl.CustomComparison(
        output_column_name="spelled_name",
        comparison_description="whole name as written or as the email spells it",
        comparison_levels=[
            {
                "sql_condition": f"{nothing} or not ({nameless} or {split})",
                "label_for_charts": "nothing to compare, or names on both sides",
                "is_null_level": True,
            },
            {
                "sql_condition": " or ".join(f"{a} = {b}" for a, b in pairs),
                "label_for_charts": "one spelling of the whole name agrees",
            },
            {"sql_condition": "ELSE", "label_for_charts": "the whole names differ"},
        ],
    )


# Jaro-Winkler levels of the name comparisons: the first is "one typo apart".
NAME_SIMILARITY_LEVELS = [0.92, 0.8]
FAMILY_LEVEL_SUFFIX = ", same family name"
# The family names agree as the family-name comparison's two strongest levels count it: the same,
# or one typo apart (Hardin and Hadin at one address are a household as much as two Hardins).
SAME_FAMILY = (
    "coalesce(last_name_key_l = last_name_key_r or jaro_winkler_similarity(last_name_key_l, "
    f"last_name_key_r) >= {NAME_SIMILARITY_LEVELS[0]}, false)"
)
SIMILAR_STREET = "jaro_winkler_similarity(street_key_l, street_key_r) >= 0.9"
# One street line (a typo allowed) with the same house number, postcode or city: what the address
# comparison's street levels hold between them.
SAME_STREET = (
    f"coalesce({SIMILAR_STREET} and (house_number_l = house_number_r"
    " or postal_code_l = postal_code_r or city_key_l = city_key_r), false)"
)
HOUSEHOLD_LEVEL_SUFFIX = ", same family name and address"


def _address_comparison():
    """Street, house number, postcode and city as one comparison: they are not independent
    (the same street implies the same postcode), and counted apart they gave a household
    living at one address four times the evidence and outweighed different given names. The
    strong levels are split by whether the family names agree, for the same reason."""
    import splink.comparison_library as cl

    same_place = "(postal_code_l = postal_code_r or city_key_l = city_key_r)"
    # A household shares its address and its family name: where the family names agree too the
    # address is weighed given them (_given_the_family_name), not counted on top of them.
    empty = " and ".join(f"{c}_{{side}} is null" for c in ("street_key", "postal_code", "city_key"))
    return cl.CustomComparison(
        output_column_name="address",
        comparison_description="street, house number, postcode and city",
        comparison_levels=[
            {
                "sql_condition": f"({empty.format(side='l')}) or ({empty.format(side='r')})",
                "label_for_charts": "no address on one side",
                "is_null_level": True,
            },
            {
                "sql_condition": "street_key_l = street_key_r and house_number_l = house_number_r"
                f" and {same_place} and {SAME_FAMILY}",
                "label_for_charts": "same street, house number and postcode or city"
                + FAMILY_LEVEL_SUFFIX,
            },
            {
                "sql_condition": "street_key_l = street_key_r and house_number_l = house_number_r"
                f" and {same_place}",
                "label_for_charts": "same street, house number and postcode or city",
            },
            # a typo in one record's street: still a household's one address
            {
                "sql_condition": f"{SIMILAR_STREET} and house_number_l = house_number_r"
                f" and {SAME_FAMILY}",
                "label_for_charts": "similar street, same house number" + FAMILY_LEVEL_SUFFIX,
            },
            {
                "sql_condition": f"{SIMILAR_STREET} and house_number_l = house_number_r",
                "label_for_charts": "similar street, same house number",
            },
            {
                "sql_condition": f"{SIMILAR_STREET} and {same_place} and {SAME_FAMILY}",
                "label_for_charts": "similar street, same postcode or city" + FAMILY_LEVEL_SUFFIX,
            },
            {
                "sql_condition": f"{SIMILAR_STREET} and {same_place}",
                "label_for_charts": "similar street, same postcode or city",
            },
            {
                "sql_condition": "postal_code_l = postal_code_r and city_key_l = city_key_r"
                f" and {SAME_FAMILY}",
                "label_for_charts": "same postcode and city" + FAMILY_LEVEL_SUFFIX,
            },
            {
                "sql_condition": "postal_code_l = postal_code_r and city_key_l = city_key_r",
                "label_for_charts": "same postcode and city",
            },
            {
                "sql_condition": "postal_code_l = postal_code_r or (city_key_l = city_key_r and"
                " levenshtein(postal_code_l, postal_code_r) <= 1)",
                "label_for_charts": "same postcode, or same city and postcode one off",
            },
            {
                "sql_condition": "city_key_l = city_key_r"
                " or levenshtein(postal_code_l, postal_code_r) <= 1",
                "label_for_charts": "same city, or postcode one off",
            },
            {"sql_condition": "ELSE", "label_for_charts": "different address"},
        ],
    )


def _phones_comparison():
    """A phone in common, split by whether the family names agree, as the address is: a
    household's landline, seen once in each of two systems, is not marked as shared, and
    counted on top of the family name it linked household members (at 1M source records, 103
    of 1,331 wrong links shared a family name, an address and a phone)."""
    import splink.comparison_library as cl

    common = "array_length(list_intersect(phones_l, phones_r)) >= 1"
    return cl.CustomComparison(
        output_column_name="phones",
        comparison_description="phone and mobile",
        comparison_levels=[
            {
                "sql_condition": "phones_l is null or phones_r is null",
                "label_for_charts": "no phone on one side",
                "is_null_level": True,
            },
            # a household's landline: weighed given the family name and the address it shares
            # too (_given_the_family_name), else it counted the household twice
            {
                "sql_condition": f"{common} and {SAME_FAMILY} and {SAME_STREET}",
                "label_for_charts": "a phone in common" + HOUSEHOLD_LEVEL_SUFFIX,
            },
            {
                "sql_condition": f"{common} and {SAME_FAMILY}",
                "label_for_charts": "a phone in common" + FAMILY_LEVEL_SUFFIX,
            },
            {"sql_condition": common, "label_for_charts": "a phone in common"},
            {"sql_condition": "ELSE", "label_for_charts": "no phone in common"},
        ],
    )


def _comparison(column: str):
    """How one key is compared: levels from exact to different, so a typo, a transposed date
    or a nickname still counts for a match and a clear difference counts against it (term
    frequencies: a common name or postcode is weaker evidence than a rare one)."""
    import splink.comparison_library as cl

    if column in ("first_name_key", "last_name_key"):
        return cl.NameComparison(
            column,
            jaro_winkler_thresholds=NAME_SIMILARITY_LEVELS,
            dmeta_col_name=_phonetic(column),
        ).configure(term_frequency_adjustments=True)
    if column == "birth_date":
        # exact, one character off (typo, swapped digits), within a month, a year, else
        return cl.DateOfBirthComparison(
            column,
            input_is_string=True,
            datetime_thresholds=[1, 1],
            datetime_metrics=["month", "year"],
        )
    if column == "postal_code":
        return cl.LevenshteinAtThresholds(column, [1]).configure(term_frequency_adjustments=True)
    if column == "address":
        return _address_comparison()
    if column == "spelled_name":
        return _spelled_name_comparison()
    if column == "email_local":
        return cl.ExactMatch(column).configure(term_frequency_adjustments=True)
    if column == "phones":
        return _phones_comparison()
    if column == "other_id":
        return cl.LevenshteinAtThresholds(column, [1, 2])
    raise ValueError(f"no comparison for {column!r}")


# Blocking: the pairs worth comparing, each over keys that must be filled. Typos rarely hit a
# name's first letters; a pair with both names mistyped still shares a birth date and postcode.
_BLOCKS: tuple[tuple[str, ...], ...] = (
    ("last_name_key", "substr(first_name_key, 1, 1)"),
    ("first_name_key", "substr(last_name_key, 1, 3)"),
    ("last_name_key", "postal_code"),
    ("first_name_key", "postal_code"),
    ("last_name_key", "birth_date"),
    ("first_name_key", "birth_date"),
    ("birth_date", "postal_code"),
    ("email_local",),
    ("other_id",),
)
_SPELLED_NAME_RULES = (
    "l.full_name_key = r.full_name_key",
    "l.full_name_key = r.email_name_key",
    "l.email_name_key = r.full_name_key",
)
_PHONE_RULES = (
    "l.phone = r.phone",
    "l.phone = r.mobile_phone",
    "l.mobile_phone = r.phone",
    "l.mobile_phone = r.mobile_phone",
)
_SWAPPED_NAMES = "l.first_name_key = r.last_name_key and l.last_name_key = r.first_name_key"
# Sessions of EM, in order of preference: each trains every comparison but those it blocks on;
# the first that finds pairs for the names and the first for the rest are used.
_EM_BLOCKS = (
    ("first_name_key", "last_name_key"),
    ("birth_date",),
    ("postal_code",),
    ("email_local",),
    ("last_name_key",),
    ("other_id",),
)
# Pairs surely the same person, for estimating the share of matching pairs (the prior).
_DETERMINISTIC = (
    ("first_name_key", "last_name_key", "birth_date"),
    ("first_name_key", "last_name_key", "postal_code"),
    ("last_name_key", "email_local"),
    ("first_name_key", "other_id"),
)
PRIOR_RECALL = 0.7


def _keys_of(expressions: tuple[str, ...]) -> set[str]:
    return {c for c in COMPARED if any(c in e for e in expressions)}


def present_columns(candidates: pd.DataFrame | duckdb.DuckDBPyRelation) -> tuple[str, ...]:
    """The comparison keys the data fills (on at least MIN_FILLED of the candidates)."""
    if isinstance(candidates, pd.DataFrame):
        frame = _splink_frame(candidates)
        if frame.empty:
            return ()
        filled = {c: frame[c].notna().mean() for c in COMPARED if c in frame}
    else:
        names = set(candidates.columns)
        counts = {
            c: f"count({'coalesce(phone, mobile_phone)' if c == 'phones' else c})"
            for c in COMPARED
            if c in names or (c == "phones" and "phone" in names)
        }
        row = candidates.aggregate(", ".join(["count(*)", *counts.values()])).fetchall()[0]
        total = row[0] or 1
        filled = {c: n / total for c, n in zip(counts, row[1:], strict=True)}
    return tuple(c for c in COMPARED if filled.get(c, 0) >= MIN_FILLED)


def _blocking_rules(present: tuple[str, ...]) -> list[str]:
    """Prediction blocking over the filled keys, as SQL over l and r."""
    from splink import block_on

    rules = [
        block_on(*block).get_blocking_rule("duckdb").blocking_rule_sql
        for block in _BLOCKS
        if _keys_of(block) <= set(present)
    ]
    if {"first_name_key", "last_name_key"} <= set(present):
        rules.append(_SWAPPED_NAMES)
    if set(SPELLED_NAME_KEYS) <= set(present):
        rules.extend(_SPELLED_NAME_RULES)
    if "phones" in present:
        rules.extend(_PHONE_RULES)
    return rules


def _comparison_of(key: str) -> str:
    if key in ADDRESS_PARTS:
        return "address"
    return "spelled_name" if key in SPELLED_NAME_KEYS else key


def _trained_by_blocking_on(block: tuple[str, ...]) -> set[str]:
    """The comparisons an EM session blocked on these keys cannot train: those of the keys, and
    the whole name where the block holds a name field (its pairs agree on it)."""
    blocked = {_comparison_of(k) for k in block}
    if blocked & set(NAME_KEYS):
        blocked.add("spelled_name")
    return blocked


def _compared_names(present: tuple[str, ...], overrides: dict | None) -> list[str]:
    """The comparisons for the filled keys, less those var `cdp_matching` excludes."""
    filled = {_comparison_of(k) for k in present}
    if not set(SPELLED_NAME_KEYS) <= set(present):
        filled.discard("spelled_name")  # names alone: the name comparisons say it all
    excluded = (overrides or {}).get("exclude_comparisons", [])
    return [c for c in COMPARISONS if c in filled and c not in excluded]


def _settings(present: tuple[str, ...], overrides: dict | None = None):
    from splink import SettingsCreator

    overrides = overrides or {}
    compared = _compared_names(present, overrides)
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        # estimated from the data (trained_model); this is only where EM starts
        probability_two_random_records_match=overrides.get(
            "probability_two_random_records_match", 1 / 5000
        ),
        comparisons=[_comparison(c) for c in compared],
        blocking_rules_to_generate_predictions=overrides.get("blocking_rules")
        or _blocking_rules(present),
        retain_intermediate_calculation_columns=True,
        retain_matching_columns=False,
    )


def _phonetic(column: str) -> str:
    return f"{column}_sounds"


def _sounds(names: pd.Series) -> pd.Series:
    """Each name's Metaphone code as a one-value array (Splink's phonetic level intersects
    arrays): Kathryn and Catherine, Filip and Philipp, Vogel and Fogel sound alike where
    Jaro-Winkler sees different strings. Coded once per distinct name."""
    import jellyfish

    codes = {name: [jellyfish.metaphone(name)] for name in names.dropna().unique() if name}
    return pd.Series([codes.get(name) for name in names], index=names.index, dtype=object)


def _splink_frame(candidates: pd.DataFrame) -> pd.DataFrame:
    """The frame Splink reads: the phones as one array, and the names' phonetic codes."""
    sounds = {_phonetic(key): _sounds(candidates[key]) for key in NAME_KEYS if key in candidates}
    return candidates.assign(
        phones=[
            [p for p in pair if isinstance(p, str)] or None
            for pair in zip(candidates["phone"], candidates["mobile_phone"], strict=True)
        ],
        **sounds,
    )


# m and u are rates: a sample estimates them as well as everything does, while EM's blocked
# pairs grow with the square of the records (188M pairs on postal code at 10M source records).
# Tried smaller: 60k took the matcher at 1M source records from 18.3 to 11.3 s with the same F1,
# but at 10M (1.1M candidates, sparser name pairs) F1 fell from 0.743 to 0.719.
TRAINING_RECORDS = 150_000
INITIAL_U_PAIRS = 1e6  # random pairs of the first u estimate (trained_model)


def _connection() -> duckdb.DuckDBPyConnection:
    """Splink's own in-memory DuckDB, held to the warehouse's memory limit, spilling to disk."""
    spill = str(Path(tempfile.gettempdir()) / "cdp-splink")
    return duckdb.connect(config={**duckdb_config(), "temp_directory": spill})


# Splink takes the prior's log odds: a prior of 0 or 1 (a few records, every sure pair found)
# is a math domain error, so it is kept inside these bounds.
PRIOR_BOUNDS = (1e-12, 1 - 1e-6)


def _as_table(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, name: str) -> str:
    """The frame as a table of Splink's DuckDB, copied once: each of a training's linkers would
    read a registered pandas frame again, through a replacement scan of its Python objects."""
    con.register("cdp_frame_to_copy", frame)
    try:
        con.execute(f"create or replace table {name} as select * from cdp_frame_to_copy")
    finally:
        con.unregister("cdp_frame_to_copy")
    return name


def _linker(con: duckdb.DuckDBPyConnection, candidates: pd.DataFrame | str, settings):
    from splink import DuckDBAPI, Linker

    logging.getLogger("splink").setLevel(logging.WARNING)
    prior = isinstance(settings, dict) and settings.get("probability_two_random_records_match")
    if prior is not None and prior is not False:
        low, high = PRIOR_BOUNDS
        settings = {**settings, "probability_two_random_records_match": min(max(prior, low), high)}
    return Linker(
        DuckDBAPI(connection=con).register(candidates), settings, log_level=logging.WARNING
    )


def trained_model(
    candidates: pd.DataFrame,
    overrides: dict | None = None,
    present: tuple[str, ...] | None = None,
) -> dict:
    """Splink's settings for the keys the candidates fill, with u trained by random sampling,
    the prior estimated from sure pairs and m by EM, on the candidates or on a seeded sample
    of TRAINING_RECORDS of them. A session that finds no pairs is skipped, never fatal."""
    from splink import block_on

    present = present_columns(candidates) if present is None else present
    if len(candidates) > TRAINING_RECORDS:
        candidates = candidates.sample(n=TRAINING_RECORDS, random_state=1)
    con = _connection()
    try:
        frame = _splink_frame(candidates)
        table = _as_table(con, frame, "cdp_training_frame")
        linker = _linker(con, table, _settings(present, overrides))
        training = linker.training
        # Only where EM starts: u is counted again over U_SAMPLE_PAIRS after it
        # (_u_among_non_matches). 5e6 pairs here gave the same edges on the demo, FEBRL3 and the
        # US households as 1e6, in 2-5x the time.
        training.estimate_u_using_random_sampling(max_pairs=INITIAL_U_PAIRS, seed=1)
        overrides = overrides or {}
        if "probability_two_random_records_match" not in overrides:
            rules = [block_on(*r) for r in _DETERMINISTIC if set(r) <= set(present)]
            if rules:
                _try(
                    lambda: training.estimate_probability_two_random_records_match(
                        rules, recall=PRIOR_RECALL
                    )
                )
        model = _expectation_maximisation(con, linker, table, present, overrides, len(candidates))
        # Once more with u counted among the random pairs that are not matches.
        model = _u_among_non_matches(con, frame, model)
        # the prior is found once m and u are final, below
        model = _expectation_maximisation(
            con,
            _linker(con, table, model),
            table,
            present,
            overrides,
            len(candidates),
            with_prior=False,
        )
        model = _given_the_family_name(model)
        if "probability_two_random_records_match" not in overrides:
            linker = _linker(con, table, model)
            prior = _try(lambda: _prior_at_fixed_point(con, linker, len(candidates), model))
            if prior is not None:
                model["probability_two_random_records_match"] = prior
        return model
    finally:
        con.close()


def _given_the_family_name(model: dict) -> dict:
    """The address and phone levels that hold the family name too weighed given the family
    name (m and u over those of the family name's levels SAME_FAMILY holds), so a shared family
    name is not counted twice: a household shares all three, and among non-matching pairs with
    one family name the address and the landline agree far more often than among all of them.
    A phone in common with both is weighed given both: a household's landline."""
    comparisons = {c["output_column_name"]: c for c in model["comparisons"]}
    if "last_name_key" not in comparisons:
        return model
    # the levels SAME_FAMILY holds: the exact one and one typo apart
    levels = comparisons["last_name_key"]["comparison_levels"]
    agreeing = [lv for lv in levels if not lv.get("is_null_level")][:2]
    if not all(lv.get("m_probability") and lv.get("u_probability") for lv in agreeing):
        return model
    m_family = sum(lv["m_probability"] for lv in agreeing)
    u_family = sum(lv["u_probability"] for lv in agreeing)
    # family name and street line together, as SAME_STREET and SAME_FAMILY hold them (before the
    # address levels become conditional below)
    household = [
        lv
        for lv in comparisons.get("address", {}).get("comparison_levels", [])
        if lv["label_for_charts"].endswith(FAMILY_LEVEL_SUFFIX)
        and lv["label_for_charts"].startswith(("same street", "similar street"))
        and lv.get("m_probability")
        and lv.get("u_probability")
    ]
    m_household = sum(lv["m_probability"] for lv in household)
    u_household = sum(lv["u_probability"] for lv in household)
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            m, u = level.get("m_probability"), level.get("u_probability")
            label = level["label_for_charts"]
            if not (m and u):
                continue
            if label.endswith(FAMILY_LEVEL_SUFFIX):
                level["m_probability"] = min(m / m_family, 1.0)
                level["u_probability"] = min(u / u_family, 1.0)
            elif label.endswith(HOUSEHOLD_LEVEL_SUFFIX) and m_household and u_household:
                level["m_probability"] = min(m / m_household, 1.0)
                level["u_probability"] = min(u / u_household, 1.0)
    return model


def _m_at_least(model: dict, floor: float) -> dict:
    """Every trained level's m at least `floor` (about one match in the records trained on),
    the levels of a comparison renormalised: EM gives m = 0 to a level it never saw among
    matches (a birth date one digit off, in data without such typos), a veto of hundreds of
    bits that would keep every true pair with that typo apart on data that has them."""
    for comparison in model["comparisons"]:
        levels = [
            lv
            for lv in comparison["comparison_levels"]
            if not lv.get("is_null_level") and isinstance(lv.get("m_probability"), float | int)
        ]
        total = sum(max(lv["m_probability"], floor) for lv in levels)
        for level in levels:
            level["m_probability"] = max(level["m_probability"], floor) / total
    return model


def _seen_agreeing(session) -> set[str]:
    """The comparisons whose agreement level (the first that is not null) an EM session saw: a
    level no pair reached keeps Splink's default m, which estimates nothing (the whole name
    spelled by an email never agrees among pairs blocked on a birth date)."""
    from splink.internals.constants import LEVEL_NOT_OBSERVED_TEXT

    return {
        comparison.output_column_name
        for comparison in session.core_model_settings.comparisons
        if comparison._comparison_levels_excluding_null[0]._m_probability
        not in (None, LEVEL_NOT_OBSERVED_TEXT)
    }


def _expectation_maximisation(
    con, linker, table: str, present, overrides: dict, records: int, with_prior: bool = True
) -> dict:
    """m by EM sessions over the filled keys (u held), then (`with_prior`) the prior at its
    fixed point."""
    from splink import block_on

    # A session trains every comparison but those over the keys it blocks on, and of those
    # only the ones its pairs show: sessions go on until every comparison was seen agreeing.
    untrained = set(_compared_names(present, overrides))
    for block in _EM_BLOCKS:
        blocked = _trained_by_blocking_on(block)
        if not set(block) <= set(present) or not (untrained - blocked):
            continue
        # A session that fails (an m underflowing float64) can leave the linker without the
        # comparisons it set aside: the next one starts from the model as it was.
        before = linker.misc.save_model_to_json()
        session = _try(
            lambda block=block, linker=linker: (
                linker.training.estimate_parameters_using_expectation_maximisation(
                    block_on(*block), estimate_without_term_frequencies=True
                )
            )
        )
        if session is None:
            linker = _linker(con, table, before)
        else:
            untrained -= _seen_agreeing(session) - blocked
        if not untrained:
            break
    model = _m_at_least(linker.misc.save_model_to_json(), 1 / max(records, 1))
    if with_prior and "probability_two_random_records_match" not in overrides:
        linker = _linker(con, table, model)
        prior = _try(lambda: _prior_at_fixed_point(con, linker, records, model))
        if prior is not None:
            model["probability_two_random_records_match"] = prior
    return model


# Random pairs u is counted over. Splink counts every random pair as a non-match; where people
# have several records (a CDP's every source) the matches among them outnumber the non-matches
# at the strong levels: on the demo, the whole name spelled by an email agreed in 3.1e-5 of
# random pairs, 2.7e-7 of the non-matching ones (counted against the truth).
U_SAMPLE_PAIRS = 2_000_000


def _u_among_non_matches(con, frame: pd.DataFrame, model: dict) -> dict:
    """The model with u re-counted over random pairs (those sharing a seeded random bucket),
    each counted as a non-match by its probability of not being one, as EM counts it. A level
    no non-match reached gets the share of one pair: below what the sample can tell."""
    records = len(frame)
    buckets = max(1, round(records * (records - 1) / 2 / U_SAMPLE_PAIRS))
    sample = frame.assign(cdp_u_bucket=np.random.default_rng(1).integers(0, buckets, size=records))
    rule = "l.cdp_u_bucket = r.cdp_u_bucket"
    settings = {
        **model,
        "blocking_rules_to_generate_predictions": [rule],
        "retain_matching_columns": True,  # the comparison levels (gamma_) come with them
    }
    linker = _linker(con, sample, settings)
    predictions = linker.inference.predict()
    model = json.loads(json.dumps(model))
    try:
        for comparison in model["comparisons"]:
            gamma = f"gamma_{comparison['output_column_name']}"
            counted = dict(
                con.sql(
                    f"select {gamma}, sum(1 - match_probability) "
                    f"from {predictions.physical_name} group by 1"
                ).fetchall()
            )
            levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
            weights = [
                max(counted.get(len(levels) - 1 - k) or 0.0, 1.0) for k in range(len(levels))
            ]
            if sum(weights) <= len(levels):  # nothing compared on this key in the sample
                continue
            for level, weight in zip(levels, weights, strict=True):
                level["u_probability"] = weight / sum(weights)
    finally:
        predictions.drop_table_from_database_and_remove_from_cache()
    return model


# Pairs this far below even odds count for nothing in the prior (2^-20 of a match each).
_PRIOR_FLOOR_WEIGHT = -20


def _prior_at_fixed_point(con, linker, records: int, model: dict) -> float | None:
    """The share of matching pairs as EM updates it: the expected matches among the blocked
    pairs (the sum of their match probabilities) over all pairs, repeated to its fixed point
    with m and u held. The sure-pair estimate only starts it: it assumes its rules find a fixed
    share of the true pairs (PRIOR_RECALL), and on the demo data they found a third, which made
    every probability too low."""
    start = model["probability_two_random_records_match"]
    predictions = linker.inference.predict(threshold_match_weight=_PRIOR_FLOOR_WEIGHT)
    try:
        weights = con.sql(f"select match_weight from {predictions.physical_name}").fetchnumpy()
    finally:
        predictions.drop_table_from_database_and_remove_from_cache()
    evidence = weights["match_weight"] - math.log2(start / (1 - start))
    pairs = records * (records - 1) / 2
    if not len(evidence) or pairs <= 0:
        return None
    prior = start
    for _ in range(100):
        odds = prior / (1 - prior) * np.exp2(evidence)
        updated = float((odds / (1 + odds)).sum() / pairs)
        if abs(updated - prior) <= 1e-4 * prior:
            return updated
        prior = updated
    return prior


def _try(step):
    """A training step that may find no pairs in this data (Splink raises): skipped."""
    from splink.internals.exceptions import SplinkException

    try:
        return step()
    except (SplinkException, ValueError, ZeroDivisionError) as exc:
        logging.getLogger(__name__).warning("matcher training step skipped: %s", exc)
        return None


def plain_splink_clusters(candidates: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """A plain Splink dedupe of the same candidates, for comparison: the same model, clustered by
    Splink itself, without identifier rules or junk/shared detection. Returns record_key,
    profile_id."""
    model = trained_model(candidates)
    con = _connection()
    try:
        linker = _linker(con, _splink_frame(candidates), model)
        predictions = linker.inference.predict(threshold_match_probability=threshold)
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=threshold
        ).as_pandas_dataframe()
    finally:
        con.close()
    return clusters.rename(columns={"cluster_id": "profile_id"})[["record_key", "profile_id"]]


def settings_fingerprint(present: tuple[str, ...], overrides: dict | None = None) -> str:
    """Changes when the comparisons or blocking rules change (in this module, in the override
    var, or because the data fills other keys): a stored model trained under other settings
    must not score new pairs."""
    plain = _settings(present, overrides).get_settings("duckdb").as_dict()
    for comparison in plain["comparisons"]:
        for level in comparison["comparison_levels"]:
            level.pop("m_probability", None)
            level.pop("u_probability", None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


def _prediction_rules(model: dict) -> list[str]:
    """The model's prediction blocking rules as SQL over l and r."""
    return [
        rule["blocking_rule"] if isinstance(rule, dict) else rule
        for rule in model["blocking_rules_to_generate_predictions"]
    ]


def score_pairs(
    candidates: pd.DataFrame,
    floor: float = 0.5,
    model: dict | None = None,
    changed: pd.Series | None = None,
    term_frequencies: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Score every blocked pair at or above `floor`. Without `model`, train on the candidates
    themselves; with `changed` (a boolean per candidate), score only the pairs that hold at
    least one changed record. `term_frequencies` (column: frame of the value and tf_<column>)
    stand for those Splink would count over `candidates`: the frame can then be a part of the
    candidates and its pairs weigh as among all of them."""
    if len(candidates) < 2:
        return no_pairs()
    model = model or trained_model(candidates)
    rules = _prediction_rules(model)
    frame = _splink_frame(candidates)
    if changed is not None:
        # One side changed, as two rules: a condition on one side is filtered before the join,
        # so a block is joined for its changed records only (an OR is checked after the join).
        rules = [
            f"({rule}) and {side}"
            for rule in rules
            for side in ("l.is_changed", "r.is_changed and not l.is_changed")
        ]
        frame = frame.assign(is_changed=changed.to_numpy())
    con = _connection()
    try:
        linker = _linker(con, frame, {**model, "blocking_rules_to_generate_predictions": rules})
        for column, table in (term_frequencies or {}).items():
            linker.table_management.register_term_frequency_lookup(
                linker.table_management.register_table(table, f"cdp_tf_{column}"), column
            )
        frame = linker.inference.predict(threshold_match_probability=floor).as_pandas_dataframe()
    finally:
        con.close()
    if frame.empty:
        return no_pairs()
    # A field agreed when its comparison added evidence for a match (positive weight) and
    # disagreed when it added evidence against; a field missing on either side does neither.
    weight_columns = {
        "first_name": "mw_first_name_key",
        "last_name": "mw_last_name_key",
        "spelled_name": "mw_spelled_name",
        "birth_date": "mw_birth_date",
        "postal_code": "mw_postal_code",
        "address": "mw_address",
        "email_local": "mw_email_local",
        "phone": "mw_phones",
        "other_id": "mw_other_id",
    }
    # Column-wise string sums: a row-wise apply cost 9 s of 17 s at 1M source records.
    present = {name: weight for name, weight in weight_columns.items() if weight in frame}
    for column, sign in (("agreed_fields", 1), ("disagreed_fields", -1)):
        joined = pd.Series("", index=frame.index, dtype=object)
        for name, weight in present.items():
            joined = joined + (frame[weight].fillna(0) * sign).gt(0).map(
                {True: name + ",", False: ""}
            )
        frame[column] = joined.str.rstrip(",")
    # Pairs in a canonical order, so an edge has one spelling.
    left = frame[["record_key_l", "record_key_r"]].min(axis=1)
    right = frame[["record_key_l", "record_key_r"]].max(axis=1)
    frame["record_key_l"], frame["record_key_r"] = left, right
    return frame[PAIR_COLUMNS].reset_index(drop=True)


# Incremental scoring: the trained model and the fingerprint of every scored candidate live
# beside the matches table, so a run scores only the pairs that touch new or changed records.
# The bookkeeping runs in the warehouse's DuckDB: at 10M source records, pulling 1.1M candidates
# and 2.5M kept pairs through pandas to find that nothing changed took 14 s.
MODEL_TABLE = "identity_match_model"
SCORED_TABLE = "identity_match_scored"
# Retrain and rescore everything once the candidates change this much. m and u are rates that
# a sample estimates well, and every retraining moves some borderline pairs across the
# threshold: retraining after 10% more demo people split 27 profiles of unaffected people
# (99.7% kept their ids); the pairs of new records are scored with the stored model instead.
RETRAIN_GROWTH = 0.25
CANDIDATES_VIEW = "cdp_match_candidates"


# Columns of int_match_candidates that are bookkeeping, not comparison keys: the record's
# fingerprint of what its keys were made from changes with a spelling the keys fold away, or with
# an edit of the keying SQL that leaves the keys as they were, and would rescore those records.
NOT_COMPARED = ("record_key", "input_fingerprint")


def candidate_hashes_sql(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """SQL for record_key, candidate_hash: one number per candidate that changes when any of
    its comparison keys changes (DuckDB's 64-bit hash over them)."""
    columns = con.sql(f"select * from {relation} limit 0").columns
    keys = [c for c in columns if c not in NOT_COMPARED]
    return (
        f"select record_key, hash({', '.join(quote(c) for c in keys)}) as candidate_hash "
        f"from {relation}"
    )


def _stored_model(
    con, schema: str, this: str, fingerprint: str, floor: float, records: int
) -> dict | None:
    """The stored model when its pairs can be kept: same settings and floor, the matches table
    as that run left it, and the candidates within RETRAIN_GROWTH of what it was trained on."""
    try:
        row = con.execute(
            "select fingerprint, floor, trained_records, pairs, model_json "
            f"from {quote(schema)}.{quote(MODEL_TABLE)}"
        ).fetchall()
        pairs_now = con.execute(f"select count(*) from {this}").fetchall()[0][0]
    except duckdb.CatalogException:
        return None
    if not row:
        return None
    stored_fingerprint, stored_floor, trained_records, pairs, model_json = row[0]
    if (
        stored_fingerprint != fingerprint
        or stored_floor != floor
        or pairs != pairs_now
        or abs(records - trained_records) > RETRAIN_GROWTH * trained_records
    ):
        return None
    return {"model": json.loads(model_json), "trained_records": trained_records}


def score_incrementally(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    this: str,
    candidates: duckdb.DuckDBPyRelation,
    floor: float = 0.5,
    rescore_all: bool = False,
    overrides: dict | None = None,
):
    """The matches table for `candidates` (a relation of `con`), as a relation of `con`: the
    previous run's pairs between unchanged records, plus the pairs of new or changed records
    scored with the stored model; everything trained and scored afresh when there is no usable
    stored model or `rescore_all`."""
    con.register(CANDIDATES_VIEW, candidates)
    scored_table = f"{quote(schema)}.{quote(SCORED_TABLE)}"
    con.execute(
        "create or replace temp table cdp_candidate_hashes as "
        + candidate_hashes_sql(con, CANDIDATES_VIEW)
    )
    records = con.execute("select count(*) from cdp_candidate_hashes").fetchall()[0][0]
    # One reading of which keys the data fills: the fingerprint and the training agree on it.
    present = present_columns(con.table(CANDIDATES_VIEW))
    fingerprint = settings_fingerprint(present, overrides)
    stored = None if rescore_all else _stored_model(con, schema, this, fingerprint, floor, records)
    if stored is None:
        # In one order on every engine: sampling and training are seeded, so equal candidates
        # give an equal model.
        frame = con.sql(f"select * from {CANDIDATES_VIEW} order by record_key").df()
        model = trained_model(frame, overrides, present) if len(frame) >= 2 else None
        run = {"trained_records": records, "last_run_mode": "full"}
        scored_records = records
        con.register("cdp_new_pairs", score_pairs(frame, floor, model=model))
        pairs = con.sql("select * from cdp_new_pairs")
    else:
        model = stored["model"]
        run = {"trained_records": stored["trained_records"], "last_run_mode": "incremental"}
        con.execute(
            f"""create or replace temp table cdp_changed_candidates as
            select now_.record_key from cdp_candidate_hashes as now_
            left join {scored_table} as scored using (record_key)
            where scored.candidate_hash is distinct from now_.candidate_hash"""
        )
        # Records whose pairs go: changed ones and those no longer among the candidates.
        con.execute(
            f"""create or replace temp table cdp_stale_records as
            select record_key from cdp_changed_candidates
            union
            select record_key from {scored_table}
            anti join cdp_candidate_hashes using (record_key)"""
        )
        scored_records = con.execute("select count(*) from cdp_changed_candidates").fetchall()[0][0]
        kept = f"""select {", ".join(PAIR_COLUMNS)} from {this}
            anti join cdp_stale_records as l on l.record_key = record_key_l
            anti join cdp_stale_records as r on r.record_key = record_key_r"""
        if scored_records:
            frame, term_frequencies = _changed_and_their_neighbours(con, model)
            changed = frame.pop("is_changed")
            con.register(
                "cdp_new_pairs",
                score_pairs(
                    frame, floor, model=model, changed=changed, term_frequencies=term_frequencies
                ),
            )
            kept += f" union all select {', '.join(PAIR_COLUMNS)} from cdp_new_pairs"
        # In a temp table: counted, then copied as the model's table (it replaces the one read).
        con.execute(f"create or replace temp table cdp_matches as {kept}")
        pairs = con.sql("select * from cdp_matches")
    run.update(
        fingerprint=fingerprint,
        floor=floor,
        pairs=pairs.aggregate("count(*)").fetchall()[0][0],
        last_run_scored_records=int(scored_records),
        last_run_at=pd.Timestamp.utcnow().tz_localize(None),
        model_json=json.dumps(model),
    )
    _replace_table(con, schema, SCORED_TABLE, con.table("cdp_candidate_hashes"))
    _replace_table(con, schema, MODEL_TABLE, pd.DataFrame([run]))
    return pairs


def _changed_and_their_neighbours(
    con: duckdb.DuckDBPyConnection, model: dict
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame] | None]:
    """The changed candidates (cdp_changed_candidates) and those one of the model's blocking
    rules pairs with one of them, either side, flagged is_changed; with the term frequencies of
    every candidate, so their pairs score as among all candidates. Only these leave the
    warehouse: pulling and preparing all 175k candidates of the 1M bench for Splink was half
    of a pass after 1% new people. Every candidate, and no frequencies, where a rule or a
    frequency column is not SQL over the candidates' own columns (var cdp_matching's rules)."""
    rules = _prediction_rules(model)
    tf_columns = sorted(
        {
            level["tf_adjustment_column"]
            for comparison in model["comparisons"]
            for level in comparison["comparison_levels"]
            if level.get("tf_adjustment_column")
        }
    )
    flagged = f"""select candidates.*, changed.record_key is not null as is_changed
        from {CANDIDATES_VIEW} as candidates
        left join cdp_changed_candidates as changed using (record_key)"""
    try:
        con.execute(
            f"""create or replace temp table cdp_changed_rows as
            select * from {CANDIDATES_VIEW} semi join cdp_changed_candidates using (record_key)"""
        )
        neighbours = " union ".join(
            f"select r.record_key from cdp_changed_rows as l inner join {CANDIDATES_VIEW} as r "
            f"on {rule} union select l.record_key from {CANDIDATES_VIEW} as l "
            f"inner join cdp_changed_rows as r on {rule}"
            for rule in rules
        )
        con.execute(
            "create or replace temp table cdp_near_changed as "
            f"select record_key from cdp_changed_rows union {neighbours}"
        )
        term_frequencies = {
            column: con.sql(
                f"""select {quote(column)}, cast(count(*) as double)
                    / cast(sum(count(*)) over () as double) as {quote("tf_" + column)}
                from {CANDIDATES_VIEW} where {quote(column)} is not null group by 1"""
            ).df()
            for column in tf_columns
        }
    except duckdb.Error:
        return con.sql(f"{flagged} order by record_key").df(), None
    frame = con.sql(
        f"{flagged} semi join cdp_near_changed as near on near.record_key = candidates.record_key "
        "order by record_key"
    ).df()
    return frame, term_frequencies


def _replace_table(
    con, schema: str, table: str, frame: pd.DataFrame | duckdb.DuckDBPyRelation
) -> None:
    """`schema.table` as a copy of a frame or of a relation of `con`."""
    con.execute(f"create schema if not exists {quote(schema)}")
    con.register("cdp_state_frame", frame)
    try:
        relation = f"{quote(schema)}.{quote(table)}"
        con.execute(f"create or replace table {relation} as from cdp_state_frame")
    finally:
        con.unregister("cdp_state_frame")


# Warehouses without dbt Python models (PostgreSQL): a Dagster step between the dbt steps runs
# the same incremental scoring on a local DuckDB, with the warehouse's candidates and the state
# of the last run copied in, and writes the pairs and the state back in one transaction.
PAIRS_TABLE = "identity_match_pairs"
# Where the pairs are kept: the dbt model on DuckDB, the matcher step's table elsewhere.
MATCHES_TABLES = ("int_identity_matches", PAIRS_TABLE)


def pairs_deleted(con, schema: str, table: str, count: int) -> None:
    """`count` pairs were deleted from `schema`.`table` outside the matcher (an erasure, with the
    records they named, which leave the candidates too). The stored run's pair count follows:
    otherwise the next run takes the table as replaced, retrains and rescores everything (17.8 s
    of the demo's rebuild after erasing one person, against 0.7 s keeping the pairs)."""
    if table in MATCHES_TABLES and count and table_exists(con, schema, MODEL_TABLE):
        con.execute(f"update {quote(schema)}.{quote(MODEL_TABLE)} set pairs = pairs - ?", [count])


def matcher_config(manifest_path) -> dict:
    """The settings dbt rendered into model int_identity_matches (the vars), from a manifest;
    the defaults when there is none."""
    config, schema = {}, "intermediate"
    if manifest_path is not None and Path(manifest_path).exists():
        node = json.loads(Path(manifest_path).read_text())["nodes"].get(
            "model.cdp.int_identity_matches"
        )
        if node is not None:
            config, schema = node["config"], node["schema"]
    overrides = config.get("matching_overrides") or "{}"
    return {
        "schema": schema,
        "floor": float(config.get("review_threshold") or 0.5),
        "rescore_all": str(config.get("rescore_all", False)).lower() == "true",
        "overrides": json.loads(overrides) if isinstance(overrides, str) else overrides,
    }


def score_frames(
    candidates: pd.DataFrame,
    state: dict[str, pd.DataFrame],
    schema: str,
    floor: float = 0.5,
    rescore_all: bool = False,
    overrides: dict | None = None,
) -> dict[str, pd.DataFrame]:
    """The incremental scoring on a local DuckDB, for a warehouse that cannot run it itself:
    `candidates` and the last run's `state` (its PAIRS_TABLE, SCORED_TABLE and MODEL_TABLE, those
    that exist) in, the three tables to write back out. Hashes travel as text: PostgreSQL and
    Spark have no unsigned 64-bit integer."""
    local = _connection()
    try:
        local.execute(f"create schema {quote(schema)}")
        local.register("cdp_frame", candidates)
        local.execute("create table cdp_candidates as from cdp_frame")
        local.unregister("cdp_frame")
        for table, frame in state.items():
            local.register("cdp_frame", frame)
            select = (
                "select * replace (cast(candidate_hash as ubigint) as candidate_hash)"
                if table == SCORED_TABLE
                else "select *"
            )
            local.execute(f"create table {quote(schema)}.{quote(table)} as {select} from cdp_frame")
            local.unregister("cdp_frame")
        pairs = score_incrementally(
            local,
            schema=schema,
            this=f"{quote(schema)}.{quote(PAIRS_TABLE)}",
            candidates=local.table("cdp_candidates"),
            floor=floor,
            rescore_all=rescore_all,
            overrides=overrides,
        ).df()
        scored = local.sql(
            "select record_key, cast(candidate_hash as varchar) as candidate_hash "
            f"from {quote(schema)}.{quote(SCORED_TABLE)}"
        ).df()
        run = local.sql(f"select * from {quote(schema)}.{quote(MODEL_TABLE)}").df()
    finally:
        local.close()
    return {PAIRS_TABLE: pairs, SCORED_TABLE: scored, MODEL_TABLE: run}


def run_summary(tables: dict[str, pd.DataFrame]) -> dict:
    """A scoring run's bookkeeping (mode, pairs, records scored), from its MODEL_TABLE."""
    row = tables[MODEL_TABLE].iloc[0]
    return {
        "mode": row["last_run_mode"],
        "pairs": int(row["pairs"]),
        "records": int(row["trained_records"]),
        "scored_records": int(row["last_run_scored_records"]),
    }


def score_in_warehouse(
    warehouse,
    schema: str,
    candidates_relation: str,
    floor: float = 0.5,
    rescore_all: bool = False,
    overrides: dict | None = None,
) -> dict:
    """Score the candidates of `candidates_relation` (a relation of `warehouse`, a
    cdp.core.warehouse.Warehouse) into `schema.identity_match_pairs`, the state beside it, all in
    one transaction; returns the run's bookkeeping."""
    state = {
        table: warehouse.execute(f"select * from {schema}.{table}").df()
        for table in (MODEL_TABLE, SCORED_TABLE, PAIRS_TABLE)
        if table_exists(warehouse, schema, table)
    }
    tables = score_frames(
        warehouse.execute(f"select * from {candidates_relation}").df(),
        state,
        schema,
        floor=floor,
        rescore_all=rescore_all,
        overrides=overrides,
    )
    warehouse.execute("begin transaction")
    try:
        warehouse.execute(f"create schema if not exists {quote(schema)}")
        for table, frame in tables.items():
            warehouse.register("cdp_frame", frame)
            warehouse.execute(f"drop table if exists {quote(schema)}.{quote(table)}")
            warehouse.execute(
                f"create table {quote(schema)}.{quote(table)} as select * from cdp_frame"
            )
            warehouse.unregister("cdp_frame")
        warehouse.execute("commit")
    except Exception:
        warehouse.execute("rollback")
        raise
    return run_summary(tables)
