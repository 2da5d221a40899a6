"""Probabilistic matches between records (Splink on DuckDB): one row per scored pair at or above
var `cdp_match_review_threshold`; int_identity_edges links those at or above
`cdp_match_threshold`, identity_review_pairs lists the rest for a human."""

from cdp.matching import score_pairs


def model(dbt, session):
    dbt.config(materialized="table")
    candidates = dbt.ref("int_match_candidates").df()
    return score_pairs(candidates, floor=float(dbt.config.get("review_threshold", 0.5)))
