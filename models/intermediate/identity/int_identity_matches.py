"""Probabilistic matches between records (Splink on DuckDB): one row per scored pair at or above
var `cdp_match_review_threshold`; int_identity_edges links those at or above
`cdp_match_threshold`, identity_review_pairs lists the rest for a human.

Incremental in effect: the trained model and each candidate's fingerprint are kept beside this
table (identity_match_model, identity_match_scored), so a run scores only pairs that touch new or
changed records; it retrains and rescores everything when the candidates change by 25%, the
matcher's settings or the threshold change, or var `cdp_rescore_matches` is true."""

import json

from cdp.identity.matching import score_incrementally


def model(dbt, session):
    dbt.config(materialized="table")
    # Plain calls: dbt finds the config keys a Python model reads by parsing these lines.
    floor = dbt.config.get("review_threshold", 0.5)
    rescore_all = dbt.config.get("rescore_all", False)
    overrides = dbt.config.get("matching_overrides", "{}")
    return score_incrementally(
        session,
        schema=dbt.this.schema,
        this=str(dbt.this),
        candidates=dbt.ref("int_match_candidates"),
        floor=float(floor),
        rescore_all=str(rescore_all).lower() == "true",
        overrides=json.loads(overrides) if isinstance(overrides, str) else overrides,
    )
