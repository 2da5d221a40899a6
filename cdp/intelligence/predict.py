"""Churn probability and 12-month customer lifetime value, trained and evaluated on the warehouse's
own history.

The model is fitted the way it is used: features as of a cutoff one year back, labels from the
year after it (churn = no purchase in the next 180 days, CLV = revenue in the next 365), so no
future leaks into a feature. A quarter of those customers is held out; the holdout metrics, set
against naive baselines, and the permutation importance of every feature are stored in schema
`ml` with each run. The fitted models then score every customer as of now.

Three models compete on the holdout: regularized linear models and gradient-boosted trees on
behaviour features, and the probabilistic BG/NBD plus Gamma-Gamma on recency, frequency and order
value (cdp/intelligence/purchase_model.py). Each run serves, for churn and for CLV, the one that
did better on the holdout, and stores every model's figures; the probabilistic model's chance
that a customer is still active and expected purchases are stored for everyone.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression, PoissonRegressor
from sklearn.metrics import (
    brier_score_loss,
    mean_absolute_error,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from cdp.core.sql import table_exists, utc_now
from cdp.core.warehouse import Warehouse, as_warehouse
from cdp.intelligence.explain import top_reasons
from cdp.intelligence.purchase_model import BetaGeometricNBD, GammaGamma
from cdp.intelligence.tables import (
    IMPORTANCE,
    MODEL_VERSION,
    PREDICTIONS,
    RUNS,
    SCHEMA,
    NotEnoughData,
    record_run,
)

CHURN_DAYS, CLV_DAYS = 180, 365

# What each feature means, stored beside its importance so a marketer can read the ranking.
FEATURES = {
    "days_since_last_purchase": "days from the latest purchase to the cutoff",
    "tenure_days": "days from the first purchase to the cutoff",
    "purchase_count": "purchases before the cutoff",
    "revenue_eur": "revenue before the cutoff",
    "average_order_value_eur": "revenue per purchase",
    "purchases_last_90_days": "purchases in the 90 days before the cutoff",
    "revenue_last_365_days": "revenue in the year before the cutoff",
    "store_share": "share of purchases made in store",
    "email_opens_last_180_days": "marketing emails opened in the 180 days before the cutoff",
    "email_clicks_last_180_days": "marketing email clicks in the 180 days before the cutoff",
    "web_events_last_90_days": "web events in the 90 days before the cutoff",
}


def _timestamp(value: dt.datetime) -> str:
    """A timestamp literal both warehouses read (a datetime of ours, not user text)."""
    return f"timestamp '{value.isoformat(sep=' ')}'"


def features_as_of(con: Warehouse, as_of: dt.datetime) -> pd.DataFrame:
    """One row per profile with a purchase before `as_of`, from events before `as_of` only."""
    at = _timestamp(as_of)
    return con.execute(
        f"""
        with tx as (
            select * from marts.customer_transactions
            where is_revenue and transacted_at < {at}
        ),
        purchases as (
            select
                profile_id,
                cast({at} as date) - cast(max(transacted_at) as date) as days_since_last_purchase,
                cast({at} as date) - cast(min(transacted_at) as date) as tenure_days,
                count(*) as purchase_count,
                sum(amount_eur) as revenue_eur,
                sum(amount_eur) / count(*) as average_order_value_eur,
                count(*) filter (where transacted_at >= {at} - interval '90 days')
                    as purchases_last_90_days,
                coalesce(
                    sum(amount_eur) filter (where transacted_at >= {at} - interval '365 days'), 0
                ) as revenue_last_365_days,
                avg(case when channel = 'store' then 1.0 else 0.0 end) as store_share
            from tx group by profile_id
        ),
        events as (
            select profile_id, source, kind, occurred_at from marts.customer_events
            where source in ('email', 'web') and occurred_at < {at}
        ),
        email as (
            select
                profile_id,
                count(*) filter (where kind = 'email open') as email_opens_last_180_days,
                count(*) filter (where kind = 'email click') as email_clicks_last_180_days
            from events
            where source = 'email' and occurred_at >= {at} - interval '180 days'
            group by profile_id
        ),
        web as (
            select profile_id, count(*) as web_events_last_90_days
            from events
            where source = 'web' and occurred_at >= {at} - interval '90 days'
            group by profile_id
        )
        select
            p.*,
            coalesce(email.email_opens_last_180_days, 0) as email_opens_last_180_days,
            coalesce(email.email_clicks_last_180_days, 0) as email_clicks_last_180_days,
            coalesce(web.web_events_last_90_days, 0) as web_events_last_90_days
        from purchases p
        left join email using (profile_id)
        left join web using (profile_id)
        order by profile_id
        """,
    ).df()


def labels_after(con: Warehouse, cutoff: dt.datetime) -> pd.DataFrame:
    at = _timestamp(cutoff)
    return con.execute(
        f"""
        select
            profile_id,
            count(*) filter (where transacted_at < {at} + interval '{CHURN_DAYS} days') = 0
                as churned,
            coalesce(sum(amount_eur) filter (
                where transacted_at < {at} + interval '{CLV_DAYS} days'), 0) as revenue_next_year
        from marts.customer_transactions
        where is_revenue and transacted_at >= {at}
        group by profile_id
        """,
    ).df()


def latest_activity(con: Warehouse) -> dt.datetime:
    """The time the data stands at, as the recency traits see it (marts.data_as_of),
    a day past the newest purchase at most: models score customers as of their data, not the
    day they run."""
    as_of = (
        con.execute("select as_of from marts.data_as_of").fetchone()[0]
        if table_exists(con, "intermediate", "int_data_as_of")
        else utc_now()
    )
    latest = con.execute("select max(transacted_at) from marts.customer_transactions").fetchone()[0]
    return min(as_of, latest + dt.timedelta(days=1)) if latest else as_of


MIN_TRAINING_CUSTOMERS = 200


@dataclass
class TrainingRun:
    run_id: str
    as_of: dt.datetime
    cutoff: dt.datetime
    train_rows: int
    holdout_rows: int
    metrics: dict[str, float]
    importance: pd.DataFrame
    scored: int


@dataclass(frozen=True)
class PurchaseModel:
    """BG/NBD and Gamma-Gamma fitted on the features of `features_as_of`."""

    counts: BetaGeometricNBD
    values: GammaGamma

    @staticmethod
    def _rfm(x: pd.DataFrame):
        age = x["tenure_days"].astype(float).to_numpy()
        recency = age - x["days_since_last_purchase"].astype(float).to_numpy()
        return x["purchase_count"].to_numpy() - 1.0, recency, age

    @classmethod
    def fit(cls, x: pd.DataFrame) -> PurchaseModel:
        frequency, recency, age = cls._rfm(x)
        # the average of all purchases stands in for that of the repeat ones
        return cls(
            BetaGeometricNBD.fit(frequency, recency, age),
            GammaGamma.fit(frequency, x["average_order_value_eur"].astype(float)),
        )

    def churn(self, x: pd.DataFrame) -> np.ndarray:
        return self.counts.probability_no_purchase(CHURN_DAYS, *self._rfm(x))

    def alive(self, x: pd.DataFrame) -> np.ndarray:
        return self.counts.probability_alive(*self._rfm(x))

    def purchases(self, x: pd.DataFrame) -> np.ndarray:
        return self.counts.expected_purchases(CLV_DAYS, *self._rfm(x))

    def clv(self, x: pd.DataFrame) -> np.ndarray:
        frequency = self._rfm(x)[0]
        value = self.values.expected_value(frequency, x["average_order_value_eur"].astype(float))
        return self.purchases(x) * value


def _calibration_error(outcome, predicted, bins: int = 10) -> float:
    """Mean gap between predicted and observed churn over deciles of the prediction,
    weighted by their size."""
    frame = pd.DataFrame({"outcome": np.asarray(outcome, dtype=float), "p": predicted})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), bins, labels=False)
    grouped = frame.groupby("bin").agg(n=("p", "size"), p=("p", "mean"), o=("outcome", "mean"))
    return float((grouped["n"] * (grouped["p"] - grouped["o"]).abs()).sum() / len(frame))


# Shallow trees and large leaves: a few thousand customers overfit deeper ones.
BOOSTING = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 8, "min_samples_leaf": 40}
CHURN_MODELS = ("linear", "boosted", "bg_nbd")
CLV_MODELS = ("linear", "boosted", "bg_nbd_gamma_gamma")


class _Models:
    """The candidate churn and CLV models on one training set, each fitted once, when first
    asked for. BG/NBD needs no labels and is fitted on `history` (default the training
    features)."""

    def __init__(self, x: pd.DataFrame, churned, revenue, history: pd.DataFrame | None = None):
        self.x, self.churned, self.revenue = x, churned, revenue
        self.history = x if history is None else history

    @functools.cached_property
    def linear_churn(self) -> Pipeline:
        """Also the source of the importance ranking and of each customer's reasons."""
        return _pipeline(LogisticRegression(C=0.3, max_iter=1000)).fit(self.x, self.churned)

    @functools.cached_property
    def linear_clv(self) -> Pipeline:
        return _pipeline(PoissonRegressor(alpha=0.1, max_iter=1000)).fit(self.x, self.revenue)

    @functools.cached_property
    def boosted_churn(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(**BOOSTING, random_state=7).fit(self.x, self.churned)

    @functools.cached_property
    def boosted_clv(self) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(loss="poisson", **BOOSTING, random_state=7).fit(
            self.x, self.revenue
        )

    @functools.cached_property
    def purchase(self) -> PurchaseModel:
        return PurchaseModel.fit(self.history)

    def churn(self, name: str, x: pd.DataFrame) -> np.ndarray:
        """Churn probabilities of model `name` (one of CHURN_MODELS)."""
        if name == "bg_nbd":
            return self.purchase.churn(x)
        model = self.linear_churn if name == "linear" else self.boosted_churn
        return model.predict_proba(x)[:, 1]

    def clv(self, name: str, x: pd.DataFrame) -> np.ndarray:
        """12-month CLV of model `name` (one of CLV_MODELS)."""
        if name == "bg_nbd_gamma_gamma":
            return self.purchase.clv(x)
        return (self.linear_clv if name == "linear" else self.boosted_clv).predict(x)


def _pipeline(estimator) -> Pipeline:
    return make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), estimator)


def _importance(model: Pipeline, x: pd.DataFrame, y, scoring: str, name: str) -> pd.DataFrame:
    """Permutation importance on the holdout (how much the metric drops without the feature)
    and the standardized coefficient (which way the feature pushes)."""
    result = permutation_importance(model, x, y, scoring=scoring, n_repeats=5, random_state=7)
    frame = pd.DataFrame(
        {
            "model": name,
            "feature": x.columns,
            "importance_mean": result.importances_mean,
            "importance_std": result.importances_std,
            "coefficient": np.ravel(model[-1].coef_),
            "description": [FEATURES[c] for c in x.columns],
        }
    ).sort_values("importance_mean", ascending=False)
    frame["importance_rank"] = range(1, len(frame) + 1)
    return frame


def training_data(con: Warehouse, cutoff: dt.datetime) -> pd.DataFrame:
    """Per customer who bought before `cutoff`: the features then and the outcomes after."""
    history = features_as_of(con, cutoff)
    if len(history) < MIN_TRAINING_CUSTOMERS:
        raise NotEnoughData(
            f"only {len(history)} customers bought before {cutoff:%Y-%m-%d}: too few to train "
            f"(at least {MIN_TRAINING_CUSTOMERS})"
        )
    data = history.merge(labels_after(con, cutoff), on="profile_id", how="left")
    data["churned"] = data["churned"].fillna(True).astype(bool)
    if data["churned"].value_counts().min() < 10 or data["churned"].nunique() < 2:
        raise NotEnoughData("fewer than 10 customers churned or stayed: nothing to learn from")
    data["revenue_next_year"] = data["revenue_next_year"].fillna(0).astype(float)
    return data


def holdout_split(data: pd.DataFrame, seed: int = 7) -> tuple[pd.Index, pd.Index]:
    """The rows trained on and the quarter held out (stratified by churn)."""
    return train_test_split(data.index, test_size=0.25, random_state=seed, stratify=data["churned"])


def train_and_score(con: Warehouse, as_of: dt.datetime | None = None, seed: int = 7) -> TrainingRun:
    con = as_warehouse(con)
    as_of = as_of or latest_activity(con)
    cutoff = as_of - dt.timedelta(days=CLV_DAYS)
    data = training_data(con, cutoff)
    x = data[list(FEATURES)].astype(float)
    train, hold = holdout_split(data, seed)
    x_train, x_hold = x.loc[train], x.loc[hold]
    churn_train, churn_hold = data["churned"].loc[train], data["churned"].loc[hold]
    clv_train = data["revenue_next_year"].loc[train]
    clv_hold = data["revenue_next_year"].loc[hold]
    trained = _Models(x_train, churn_train, clv_train)
    churn_scores = {name: trained.churn(name, x_hold) for name in CHURN_MODELS}
    clv_scores = {name: trained.clv(name, x_hold) for name in CLV_MODELS}
    churn_auc = {name: float(roc_auc_score(churn_hold, p)) for name, p in churn_scores.items()}
    clv_mae = {name: float(mean_absolute_error(clv_hold, p)) for name, p in clv_scores.items()}
    # serve, for each, the model that did better on the holdout
    churn_served = max(churn_auc, key=churn_auc.get)
    clv_served = min(clv_mae, key=clv_mae.get)
    churn_p, clv_p = churn_scores[churn_served], clv_scores[clv_served]
    naive_clv = x_hold["revenue_last_365_days"]  # "next year looks like last year"
    metrics = {
        "churn_base_rate": float(churn_hold.mean()),
        "churn_auc": churn_auc[churn_served],
        **{f"churn_auc_{name}": auc for name, auc in churn_auc.items()},
        **{f"churn_served_{name}": float(name == churn_served) for name in churn_auc},
        "churn_calibration_error": _calibration_error(churn_hold, churn_p),
        **{
            f"churn_calibration_error_{name}": _calibration_error(churn_hold, p)
            for name, p in churn_scores.items()
        },
        "churn_auc_recency_baseline": float(
            roc_auc_score(churn_hold, x_hold["days_since_last_purchase"])
        ),
        "churn_brier": float(brier_score_loss(churn_hold, churn_p)),
        "churn_brier_base_rate": float(
            brier_score_loss(churn_hold, np.full(len(churn_hold), churn_train.mean()))
        ),
        "clv_mae_eur": clv_mae[clv_served],
        **{f"clv_mae_{name}_eur": mae for name, mae in clv_mae.items()},
        **{f"clv_served_{name}": float(name == clv_served) for name in clv_mae},
        "clv_mae_last_year_baseline_eur": float(mean_absolute_error(clv_hold, naive_clv)),
        "clv_mae_mean_baseline_eur": float(
            mean_absolute_error(clv_hold, np.full(len(clv_hold), clv_train.mean()))
        ),
        "clv_rmse_eur": float(root_mean_squared_error(clv_hold, clv_p)),
        "clv_spearman": float(spearmanr(clv_hold, clv_p).statistic),
        "clv_total_predicted_vs_actual": float(clv_p.sum() / max(clv_hold.sum(), 1e-9)),
    }
    importance = pd.concat(
        [
            _importance(trained.linear_churn, x_hold, churn_hold, "roc_auc", "churn"),
            _importance(trained.linear_clv, x_hold, clv_hold, "neg_mean_absolute_error", "clv_12m"),
        ]
    )

    # The served models refitted on every customer with a known outcome; BG/NBD on all history
    current = features_as_of(con, as_of)
    x_now = current[list(FEATURES)].astype(float)
    final = _Models(x, data["churned"], data["revenue_next_year"], history=x_now)
    scores = pd.DataFrame(
        {
            "profile_id": current["profile_id"],
            "churn_probability": np.round(final.churn(churn_served, x_now), 4),
            "predicted_clv_12m_eur": np.round(final.clv(clv_served, x_now), 2),
            "churn_reasons": top_reasons(
                final.linear_churn,
                x_now,
                [name.replace("_", " ") for name in FEATURES],
                direction=True,
            ),
            "probability_active": np.round(final.purchase.alive(x_now), 4),
            "expected_purchases_12m": np.round(final.purchase.purchases(x_now), 3),
        }
    )
    run = TrainingRun(
        run_id=uuid.uuid4().hex[:12],
        as_of=as_of,
        cutoff=cutoff,
        train_rows=len(x_train),
        holdout_rows=len(x_hold),
        metrics=metrics,
        importance=importance,
        scored=len(scores),
    )
    _store(con, run, scores)
    return run


def _store(con: Warehouse, run: TrainingRun, scores: pd.DataFrame) -> None:
    """Replace the predictions and append the run's metrics, in one transaction."""
    trained_at = utc_now()
    importance = run.importance.assign(run_id=run.run_id)
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute("begin transaction")
    try:
        record_run(con, RUNS, "training_cutoff", run.cutoff, run, MODEL_VERSION, trained_at)
        con.execute(
            f"""create table if not exists {IMPORTANCE} (
                run_id varchar, model varchar, feature varchar, importance_mean double precision,
                importance_std double precision, coefficient double precision, description varchar,
                importance_rank integer)"""
        )
        con.register("importance_frame", importance)
        con.execute(
            f"insert into {IMPORTANCE} select run_id, model, feature, importance_mean, "
            "importance_std, coefficient, description, importance_rank from importance_frame"
        )
        con.register("score_frame", scores)
        con.execute(f"drop table if exists {PREDICTIONS}")
        con.execute(
            f"""create table {PREDICTIONS} as
                select profile_id, churn_probability, predicted_clv_12m_eur,
                       probability_active, expected_purchases_12m, churn_reasons,
                       ? as model_run_id, ? as model_version, ? as scored_at
                from score_frame""",
            [run.run_id, MODEL_VERSION, trained_at],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        for view in ("importance_frame", "score_frame"):
            con.unregister(view)
