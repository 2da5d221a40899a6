"""Churn predictions against the generator's truth: how well any model could rank customers.

The demo data's purchases follow a BG/NBD process whose parameters are written beside it
(true_behaviour.csv: each person's purchase rate and dropout chance; true_effects.json: how a
newsletter raises the rate and support tickets the dropout). With them, the chance that a
customer makes no purchase in the next 180 days is known exactly from their history: alive
after their last purchase with odds (1-p)·e^(-λd) : p, and an alive customer buys within 180
days with chance 1-e^(-180λ). Ranked by that chance, the training run's holdout gives the
highest AUC a model of the purchase history can expect; the served model and recency are
measured on the same customers.

That ceiling knows each person's own rate and dropout, which no data shows. The reference a
model can be held to is the process's own forecast from what the data does show: the same
chance averaged over the generator's population of rates and dropouts, weighted by how likely
each makes the customer's purchase history (their count, first and last purchase) and their
newsletter and ticket flags.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from cdp.core.truth import MissingTruth, truth_files
from cdp.core.warehouse import Warehouse, as_warehouse
from cdp.intelligence.predict import (
    CHURN_DAYS,
    CLV_DAYS,
    holdout_split,
    latest_activity,
    training_data,
)
from cdp.intelligence.tables import RUNS, latest_metrics


@dataclass
class ChurnCeiling:
    holdout_customers: int
    with_truth: int  # holdout customers whose profile's records name a generated person
    churn_rate: float
    oracle_auc: float  # the true parameters' churn chance
    process_auc: float  # the generator's process and population, each customer's history
    recency_auc: float  # days since the last purchase, on the same customers
    served_auc: float | None  # the latest training run's, on its whole holdout
    served_auc_standard_error: float | None  # Hanley and McNeil's, for the holdout's size
    served_share_of_oracle: float | None  # (served - 0.5) / (oracle - 0.5)

    def as_dict(self) -> dict:
        return asdict(self)


def _person_of_profile(con: Warehouse, landing: Path) -> pd.DataFrame:
    """Per profile the generated person most of its source records belong to."""
    truth = pd.concat(pd.read_csv(f, dtype=str) for f in truth_files(landing))
    records = con.execute(
        "select profile_id, source, source_record_id from marts.customer_profile_records"
    ).df()
    counted = (
        records.merge(truth, on=["source", "source_record_id"])
        .groupby(["profile_id", "person_id"])
        .size()
        .reset_index(name="records")
        .sort_values(["records", "person_id"])
    )
    flags = (
        truth.assign(newsletter=truth["source"] == "email", tickets=truth["source"] == "support")
        .groupby("person_id")[["newsletter", "tickets"]]
        .any()
    )
    return counted.drop_duplicates("profile_id", keep="last").join(flags, on="person_id")


def _with_drivers(rate_per_year, dropout, newsletter, tickets, effects: dict):
    """The purchase rate per day and the chance to leave after a purchase, as the generator
    moves them: a newsletter raises the rate, support tickets the dropout."""
    per_day = (
        np.asarray(rate_per_year, float)
        * np.exp(effects["rate_newsletter"] * np.asarray(newsletter, float))
        / 365
    )
    leave = np.minimum(
        0.95,
        np.asarray(dropout, float)
        + effects["dropout_support_tickets"] * np.asarray(tickets, float),
    )
    return per_day, leave


def true_churn_chance(
    days_since_last_purchase, rate_per_year, dropout, newsletter, tickets, effects: dict
) -> np.ndarray:
    """P(no purchase in the next CHURN_DAYS) under the generator's process and parameters."""
    per_day, leave = _with_drivers(rate_per_year, dropout, newsletter, tickets, effects)
    stay = (1 - leave) * np.exp(-per_day * np.asarray(days_since_last_purchase, float))
    alive = stay / (stay + leave)
    return 1 - alive * (1 - np.exp(-per_day * CHURN_DAYS))


def process_churn_chance(
    purchase_count,
    tenure_days,
    days_since_last_purchase,
    newsletter,
    tickets,
    effects: dict,
    draws: int = 20_000,
) -> np.ndarray:
    """P(no purchase in the next CHURN_DAYS) given a customer's purchase history under the
    generator's process and population (not their own parameters): Monte Carlo over rates and
    dropouts drawn from the population, each weighted by the likelihood of the history. After
    every purchase, the first included, the customer may leave."""
    rng = np.random.default_rng(7)
    shape = effects["rate_shape"]
    rate_per_year = (
        effects["rate_mean_per_year"]
        * rng.gamma(shape, 1 / shape, draws)
        * np.exp(effects["rate_intent"] * rng.normal(size=draws))
    )
    base_dropout = rng.beta(effects["dropout_a"], effects["dropout_b"], draws)
    chances = []
    for count, age, gap, subscribed, ticketed in zip(
        purchase_count, tenure_days, days_since_last_purchase, newsletter, tickets, strict=True
    ):
        per_day, leave = _with_drivers(
            rate_per_year, base_dropout, float(subscribed), float(ticketed), effects
        )
        repeat, last = float(count) - 1, float(age) - float(gap)
        common = repeat * (np.log1p(-leave) + np.log(per_day))
        stayed = common + np.log1p(-leave) - per_day * float(age)
        left = common + np.log(leave) - per_day * last
        top = max(stayed.max(), left.max())
        stayed, left = np.exp(stayed - top), np.exp(left - top)
        quiet = left + stayed * np.exp(-per_day * CHURN_DAYS)
        chances.append(quiet.sum() / (left + stayed).sum())
    return np.array(chances)


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil (1982): how far an AUC measured on this many cases may stray."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return float(np.sqrt(variance))


def churn_ceiling(con, landing: str | Path, seed: int = 7) -> ChurnCeiling:
    con, landing = as_warehouse(con), Path(landing)
    effects_file = landing / "true_effects.json"
    if not effects_file.exists():
        raise MissingTruth(f"no true_effects.json in {landing}: not generated data")
    effects = json.loads(effects_file.read_text(encoding="utf-8"))["purchases_bg_nbd"]
    people = pd.concat(
        pd.read_csv(f, dtype={"person_id": str})
        for f in truth_files(landing, "true_behaviour*.csv")
    ).set_index("person_id")
    cutoff = latest_activity(con) - dt.timedelta(days=CLV_DAYS)
    data = training_data(con, cutoff)
    _, hold = holdout_split(data, seed)
    held = data.loc[hold].merge(_person_of_profile(con, landing), on="profile_id")
    held = held.join(people, on="person_id", how="inner")
    oracle = true_churn_chance(
        held["days_since_last_purchase"],
        held["purchase_rate_per_year"],
        held["dropout_probability"],
        held["newsletter"],
        held["tickets"],
        effects,
    )
    process = process_churn_chance(
        held["purchase_count"],
        held["tenure_days"],
        held["days_since_last_purchase"],
        held["newsletter"],
        held["tickets"],
        effects,
    )
    outcome = held["churned"].astype(bool)
    served = latest_metrics(con, RUNS).get("churn_auc")
    oracle_auc = float(roc_auc_score(outcome, oracle))
    churned = int(data.loc[hold, "churned"].sum())
    return ChurnCeiling(
        holdout_customers=len(hold),
        with_truth=len(held),
        churn_rate=round(float(outcome.mean()), 4),
        oracle_auc=round(oracle_auc, 4),
        process_auc=round(float(roc_auc_score(outcome, process)), 4),
        recency_auc=round(float(roc_auc_score(outcome, held["days_since_last_purchase"])), 4),
        served_auc=None if served is None else round(served, 4),
        served_auc_standard_error=(
            None
            if served is None
            else round(auc_standard_error(served, churned, len(hold) - churned), 4)
        ),
        served_share_of_oracle=(
            None if served is None else round((served - 0.5) / max(oracle_auc - 0.5, 1e-9), 4)
        ),
    )
