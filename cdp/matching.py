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
import tempfile
from pathlib import Path

import duckdb
import pandas as pd

from cdp.load import quote
from cdp.warehouse import duckdb_config

PAIR_COLUMNS = [
    "record_key_l",
    "record_key_r",
    "match_probability",
    "match_weight",
    "agreed_fields",
    "disagreed_fields",
]


def _blocking_rules() -> list[str]:
    """The pairs worth comparing, as SQL over l and r."""
    from splink import block_on

    created = [
        # Typos rarely hit a name's first letters: one name exact, the other's start.
        block_on("last_name_key", "substr(first_name_key, 1, 1)"),
        block_on("first_name_key", "substr(last_name_key, 1, 3)"),
        block_on("last_name_key", "postal_code"),
        block_on("first_name_key", "postal_code"),
        block_on("last_name_key", "birth_date"),
        block_on("email_local"),
    ]
    return [rule.get_blocking_rule("duckdb").blocking_rule_sql for rule in created] + [
        "l.phone = r.phone",
        "l.phone = r.mobile_phone",
        "l.mobile_phone = r.phone",
        "l.mobile_phone = r.mobile_phone",
    ]


def _settings():
    import splink.comparison_library as cl
    from splink import SettingsCreator

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        probability_two_random_records_match=1 / 5000,
        comparisons=[
            # Exact, one typo (a swapped or dropped letter), or different: similar-sounding
            # different names (Diane/Daniel) must count against a match, not for it.
            cl.DamerauLevenshteinAtThresholds("first_name_key", [1, 2]).configure(
                term_frequency_adjustments=True
            ),
            cl.DamerauLevenshteinAtThresholds("last_name_key", [1]).configure(
                term_frequency_adjustments=True
            ),
            cl.ExactMatch("birth_date"),
            cl.ExactMatch("postal_code"),
            cl.ExactMatch("street_key"),
            cl.ExactMatch("email_local").configure(term_frequency_adjustments=True),
            cl.ArrayIntersectAtSizes("phones", [1]),
        ],
        blocking_rules_to_generate_predictions=_blocking_rules(),
        retain_intermediate_calculation_columns=True,
        retain_matching_columns=False,
    )


def _with_phones(candidates: pd.DataFrame) -> pd.DataFrame:
    return candidates.assign(
        phones=[
            [p for p in pair if isinstance(p, str)] or None
            for pair in zip(candidates["phone"], candidates["mobile_phone"], strict=True)
        ]
    )


# m and u are rates: a sample estimates them as well as everything does, while EM's blocked
# pairs grow with the square of the records (188M pairs on postal code at 10M source records).
# Tried smaller: 60k took the matcher at 1M source records from 18.3 to 11.3 s with the same F1,
# but at 10M (1.1M candidates, sparser name pairs) F1 fell from 0.743 to 0.719.
TRAINING_RECORDS = 150_000


def _connection() -> duckdb.DuckDBPyConnection:
    """Splink's own in-memory DuckDB, held to the warehouse's memory limit, spilling to disk."""
    spill = str(Path(tempfile.gettempdir()) / "cdp-splink")
    return duckdb.connect(config={**duckdb_config(), "temp_directory": spill})


def _linker(con: duckdb.DuckDBPyConnection, candidates: pd.DataFrame, settings):
    from splink import DuckDBAPI, Linker

    logging.getLogger("splink").setLevel(logging.WARNING)
    return Linker(
        DuckDBAPI(connection=con).register(candidates), settings, log_level=logging.WARNING
    )


def trained_model(candidates: pd.DataFrame) -> dict:
    """Splink's settings with m and u trained (u by random sampling, m by EM) on the
    candidates, or on a seeded sample of TRAINING_RECORDS of them."""
    from splink import block_on

    if len(candidates) > TRAINING_RECORDS:
        candidates = candidates.sample(n=TRAINING_RECORDS, random_state=1)
    con = _connection()
    try:
        linker = _linker(con, _with_phones(candidates), _settings())
        training = linker.training
        training.estimate_u_using_random_sampling(max_pairs=5e6, seed=1)
        training.estimate_parameters_using_expectation_maximisation(
            block_on("last_name_key", "first_name_key"), estimate_without_term_frequencies=True
        )
        training.estimate_parameters_using_expectation_maximisation(
            block_on("postal_code"), estimate_without_term_frequencies=True
        )
        return linker.misc.save_model_to_json()
    finally:
        con.close()


def plain_splink_clusters(candidates: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """A plain Splink dedupe of the same candidates, for comparison: the same model, clustered by
    Splink itself, without identifier rules, junk/shared detection or the household rule.
    Returns record_key, profile_id."""
    model = trained_model(candidates)
    con = _connection()
    try:
        linker = _linker(con, _with_phones(candidates), model)
        predictions = linker.inference.predict(threshold_match_probability=threshold)
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=threshold
        ).as_pandas_dataframe()
    finally:
        con.close()
    return clusters.rename(columns={"cluster_id": "profile_id"})[["record_key", "profile_id"]]


def settings_fingerprint() -> str:
    """Changes when the comparisons or blocking rules in this module change: a stored model
    trained under other settings must not score new pairs."""
    plain = _settings().get_settings("duckdb").as_dict()
    for comparison in plain["comparisons"]:
        for level in comparison["comparison_levels"]:
            level.pop("m_probability", None)
            level.pop("u_probability", None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


def score_pairs(
    candidates: pd.DataFrame,
    floor: float = 0.5,
    model: dict | None = None,
    changed: pd.Series | None = None,
) -> pd.DataFrame:
    """Score every blocked pair at or above `floor`. Without `model`, train on the candidates
    themselves; with `changed` (a boolean per candidate), score only the pairs that hold at
    least one changed record."""
    if len(candidates) < 2:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    model = model or trained_model(candidates)
    rules = _blocking_rules()
    frame = _with_phones(candidates)
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
        frame = linker.inference.predict(threshold_match_probability=floor).as_pandas_dataframe()
    finally:
        con.close()
    if frame.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    # A field agreed when its comparison added evidence for a match (positive weight) and
    # disagreed when it added evidence against; a field missing on either side does neither.
    weight_columns = {
        "first_name": "mw_first_name_key",
        "last_name": "mw_last_name_key",
        "birth_date": "mw_birth_date",
        "postal_code": "mw_postal_code",
        "street": "mw_street_key",
        "email_local": "mw_email_local",
        "phone": "mw_phones",
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
RETRAIN_GROWTH = 0.10  # retrain and rescore everything once the candidates change this much
CANDIDATES_VIEW = "cdp_match_candidates"


def candidate_hashes_sql(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """SQL for record_key, candidate_hash: one number per candidate that changes when any of
    its comparison keys changes (DuckDB's 64-bit hash over them)."""
    keys = [c for c in con.sql(f"select * from {relation} limit 0").columns if c != "record_key"]
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
    fingerprint = settings_fingerprint()
    stored = None if rescore_all else _stored_model(con, schema, this, fingerprint, floor, records)
    if stored is None:
        frame = con.sql(f"select * from {CANDIDATES_VIEW}").df()
        model = trained_model(frame) if len(frame) >= 2 else None
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
            frame = con.sql(
                f"""select candidates.*, changed.record_key is not null as is_changed
                from {CANDIDATES_VIEW} as candidates
                left join cdp_changed_candidates as changed using (record_key)"""
            ).df()
            changed = frame.pop("is_changed")
            con.register("cdp_new_pairs", score_pairs(frame, floor, model=model, changed=changed))
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
