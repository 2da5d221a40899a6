"""Predictive lead scoring beside the rule score: the chance that a lead is accepted by sales (SAL
or further), fitted on the leads whose outcome is known, compared with the rule score on the
newest leads, and the rule points refitted on the same outcomes.

- Decided leads: those older than DECIDED_AFTER_DAYS (accepted by sales by then, or not).
- Time split: the model is fitted on the older three quarters and evaluated on the newest quarter
  (AUC, lift and calibration by decile, for the model and for the rule score); then refitted on
  all decided leads to score every lead.
- A regularized logistic regression on the features the rules read (fit: role, company size,
  industry, country, lead source; behaviour: visits, contact page, forms, email clicks,
  unsubscribes): every score keeps its reasons, the features that raise it most.
- Rule calibration: a logistic regression on which rules fired gives each rule the points its
  outcomes support, on the scale "10 points double the odds", beside its configured points.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from cdp.core.config import project_var
from cdp.core.sql import utc_now
from cdp.core.warehouse import Warehouse, as_warehouse
from cdp.intelligence.explain import top_reasons
from cdp.intelligence.tables import (
    LEAD_CALIBRATION,
    LEAD_LIFT,
    LEAD_MODEL_VERSION,
    LEAD_PREDICTIONS,
    LEAD_RUNS,
    SCHEMA,
    NotEnoughData,
    record_run,
)

DECIDED_AFTER_DAYS = 90
MIN_DECIDED_LEADS, MIN_EACH_OUTCOME = 200, 20
HOLDOUT_SHARE = 0.25
POINTS_PER_DOUBLING = 10

CATEGORICAL = {
    "job_title": "role",
    "industry": "industry",
    "country_code": "country",
    "lead_source": "lead source",
}
NUMERIC = {
    "employee_count": "employees",
    "web_events_last_30_days": "web events in 30 days",
    "visits_last_90_days": "visits in 90 days",
    "contact_page_views": "contact page views",
    "form_submissions": "forms submitted",
    "visits": "visits",
    "page_views": "page views",
    "emails_received": "emails received",
    "email_opens": "email opens",
    "email_clicks": "email clicks",
    "has_unsubscribed": "unsubscribed",
    "company_size_unknown": "company size unknown",
}


def lead_history(con: Warehouse) -> tuple[pd.DataFrame, dt.datetime]:
    """Every lead with its features, rule score and outcome, and the data's as-of time."""
    as_of = con.execute("select as_of from marts.data_as_of").fetchone()[0]
    frame = con.execute(
        """select s.contact_id, s.profile_id, s.lead_score, s.score_reasons,
                  s.job_title, s.employee_count, s.industry, s.country_code, s.lead_source,
                  s.web_events_last_30_days, s.visits_last_90_days, s.contact_page_views,
                  s.form_submissions, s.visits, s.page_views, s.emails_received, s.email_opens,
                  s.email_clicks, s.has_unsubscribed,
                  f.lead_at, f.sal_at is not null as reached_sal,
                  f.customer_at is not null as won
           from marts.lead_scores as s
           join marts.lead_funnel as f on f.contact_id = s.contact_id
           order by s.contact_id"""
    ).df()
    return frame, as_of


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    x = pd.DataFrame(index=frame.index)
    for column in CATEGORICAL:
        x[column] = frame[column].fillna("(none)").astype(str)
    for column in NUMERIC:
        if column == "company_size_unknown":
            x[column] = frame["employee_count"].isna().astype(float)
        else:
            x[column] = pd.to_numeric(frame[column], errors="coerce").fillna(0).astype(float)
    return x


def _model() -> Pipeline:
    columns = ColumnTransformer(
        [
            (
                "category",
                OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20),
                list(CATEGORICAL),
            ),
            (
                "number",
                make_pipeline(
                    FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
                    StandardScaler(),
                ),
                list(NUMERIC),
            ),
        ]
    )
    return make_pipeline(columns, LogisticRegression(C=0.5, max_iter=2000))


def _deciles(score: np.ndarray, outcome: np.ndarray) -> pd.DataFrame:
    """Leads by decile of the score (1: the top tenth), their conversion and its lift over the
    base rate. Ties share the lower decile, so a coarse score shows as few deciles."""
    ranks = pd.Series(score).rank(method="min", ascending=False)
    decile = np.ceil(ranks / len(score) * 10).clip(1, 10).astype(int)
    frame = pd.DataFrame({"decile": decile, "converted": outcome.astype(int), "score": score})
    table = frame.groupby("decile").agg(
        leads=("converted", "size"), converted=("converted", "sum"), mean_score=("score", "mean")
    )
    base = outcome.mean()
    table["conversion_rate"] = table["converted"] / table["leads"]
    table["lift"] = table["conversion_rate"] / base if base else np.nan
    return table.reset_index()


def _reasons(model: Pipeline, x: pd.DataFrame) -> list[str]:
    """Per lead, the features that raise its score most (a category counts its coefficient)."""
    names = [_readable(name) for name in model[0].get_feature_names_out()]
    return top_reasons(model, x, names)


def _readable(name: str) -> str:
    kind, _, feature = name.partition("__")
    if kind == "number":
        return NUMERIC.get(feature, feature)
    for column, label in CATEGORICAL.items():
        if feature.startswith(f"{column}_"):
            return f"{label} {feature[len(column) + 1 :]}"
    return feature


def _calibrated_rules(frame: pd.DataFrame, points: dict[str, int]) -> pd.DataFrame:
    """Each rule's points refitted on outcomes: log-odds per rule, POINTS_PER_DOUBLING points
    for each doubling of the odds."""
    fired = frame["score_reasons"].fillna("").str.split(", ")
    rules = sorted({rule for reasons in fired for rule in reasons if rule})
    if not rules:
        return pd.DataFrame(
            columns=["rule_name", "configured_points", "calibrated_points", "fired_leads",
                     "conversion_rate_when_fired", "conversion_rate_otherwise"]
        )  # fmt: skip
    indicators = pd.DataFrame(
        {rule: fired.apply(lambda reasons, r=rule: r in reasons).astype(float) for rule in rules}
    )
    outcome = frame["reached_sal"].to_numpy()
    logistic = LogisticRegression(C=1.0, max_iter=2000).fit(indicators, outcome)
    scale = POINTS_PER_DOUBLING / np.log(2)
    return pd.DataFrame(
        {
            "rule_name": rules,
            "configured_points": [points.get(rule) for rule in rules],
            "calibrated_points": np.round(logistic.coef_[0] * scale).astype(int),
            "fired_leads": [int(indicators[r].sum()) for r in rules],
            "conversion_rate_when_fired": [
                float(outcome[indicators[r] == 1].mean()) for r in rules
            ],
            "conversion_rate_otherwise": [
                float(outcome[indicators[r] == 0].mean()) if (indicators[r] == 0).any() else None
                for r in rules
            ],
        }
    )


@dataclass
class LeadModelRun:
    run_id: str
    as_of: dt.datetime
    train_rows: int
    holdout_rows: int
    holdout_since: dt.datetime
    metrics: dict[str, float]
    lift: pd.DataFrame
    calibration: pd.DataFrame
    scored: int


def train_and_score_leads(
    con: Warehouse, rule_points: dict[str, int] | None = None
) -> LeadModelRun:
    """Fit, evaluate on the newest decided leads, refit on all and score every lead; stored in
    schema ml. `rule_points`: the configured points of each rule, shown beside the refitted
    ones (by default var cdp_lead_scoring's). Raises NotEnoughData when the outcomes cannot
    support a model."""
    con = as_warehouse(con)
    if rule_points is None:
        rules = (project_var("cdp_lead_scoring") or {}).get("rules", [])
        rule_points = {rule["name"]: rule["points"] for rule in rules}
    frame, as_of = lead_history(con)
    # Only leads old enough for their outcome to be known: with the newest leads, those already
    # accepted would be over-represented among the decided ones.
    old_enough = pd.to_datetime(frame["lead_at"]) < as_of - dt.timedelta(days=DECIDED_AFTER_DAYS)
    decided = frame[old_enough]
    decided = decided.sort_values(["lead_at", "contact_id"]).reset_index(drop=True)
    positives = int(decided["reached_sal"].sum())
    if len(decided) < MIN_DECIDED_LEADS or min(positives, len(decided) - positives) < (
        MIN_EACH_OUTCOME
    ):
        raise NotEnoughData(
            f"{len(decided)} leads older than {DECIDED_AFTER_DAYS} days, {positives} of them "
            "accepted by sales: "
            f"too few to fit a lead model (at least {MIN_DECIDED_LEADS}, and "
            f"{MIN_EACH_OUTCOME} of each outcome)"
        )
    split = int(len(decided) * (1 - HOLDOUT_SHARE))
    train, hold = decided.iloc[:split], decided.iloc[split:]
    if hold["reached_sal"].nunique() < 2 or train["reached_sal"].nunique() < 2:
        raise NotEnoughData("the newest or the older leads all had one outcome: nothing to test")
    model = _model().fit(_features(train), train["reached_sal"])
    predicted = model.predict_proba(_features(hold))[:, 1]
    outcome, won = hold["reached_sal"].to_numpy(), hold["won"].to_numpy()
    rule = hold["lead_score"].astype(float).to_numpy()
    metrics = {
        "holdout_leads": float(len(hold)),
        "holdout_sal_rate": float(outcome.mean()),
        "model_auc_sal": float(roc_auc_score(outcome, predicted)),
        "rule_auc_sal": float(roc_auc_score(outcome, rule)),
        "model_brier_sal": float(brier_score_loss(outcome, predicted)),
        "base_rate_brier_sal": float(
            brier_score_loss(outcome, np.full(len(outcome), train["reached_sal"].mean()))
        ),
    }
    if 0 < won.sum() < len(won):
        metrics["model_auc_won"] = float(roc_auc_score(won, predicted))
        metrics["rule_auc_won"] = float(roc_auc_score(won, rule))
    lift = pd.concat(
        [
            _deciles(predicted, outcome).assign(scorer="model"),
            _deciles(rule, outcome).assign(scorer="rule"),
        ]
    )
    final = _model().fit(_features(decided), decided["reached_sal"])
    x_all = _features(frame)
    scores = pd.DataFrame(
        {
            "contact_id": frame["contact_id"],
            "profile_id": frame["profile_id"],
            "sal_probability": np.round(final.predict_proba(x_all)[:, 1], 4),
            "rule_score": frame["lead_score"],
            "score_reasons": _reasons(final, x_all),
        }
    )
    scores["predicted_rank"] = (
        scores["sal_probability"].rank(method="min", ascending=False).astype(int)
    )
    run = LeadModelRun(
        run_id=uuid.uuid4().hex[:12],
        as_of=as_of,
        train_rows=len(train),
        holdout_rows=len(hold),
        holdout_since=pd.Timestamp(hold["lead_at"].min()).to_pydatetime(),
        metrics=metrics,
        lift=lift,
        calibration=_calibrated_rules(decided, rule_points),
        scored=len(scores),
    )
    _store(con, run, scores)
    return run


def _store(con: Warehouse, run: LeadModelRun, scores: pd.DataFrame) -> None:
    """Replace the lead predictions, lift and rule calibration; append the run, in one
    transaction."""
    trained_at = utc_now()
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute("begin transaction")
    frames = {
        "lead_score_frame": scores.assign(model_run_id=run.run_id),
        "lead_lift_frame": run.lift.assign(run_id=run.run_id),
        "lead_rule_frame": run.calibration.assign(run_id=run.run_id),
    }
    try:
        record_run(
            con, LEAD_RUNS, "holdout_since", run.holdout_since, run, LEAD_MODEL_VERSION, trained_at
        )
        for name, frame in frames.items():
            con.register(name, frame)
        for table, select in (
            (
                LEAD_PREDICTIONS,
                "select contact_id, profile_id, sal_probability, predicted_rank, rule_score, "
                "score_reasons, model_run_id, ? as model_version, ? as scored_at "
                "from lead_score_frame",
            ),
            (
                LEAD_LIFT,
                "select run_id, scorer, decile, leads, converted, conversion_rate, lift, "
                "mean_score, ? as model_version, ? as trained_at "
                "from lead_lift_frame",
            ),
            (
                LEAD_CALIBRATION,
                "select run_id, rule_name, cast(configured_points as integer) as "
                "configured_points, calibrated_points, fired_leads, conversion_rate_when_fired, "
                "conversion_rate_otherwise, ? as model_version, ? as trained_at "
                "from lead_rule_frame",
            ),
        ):
            con.execute(f"drop table if exists {table}")
            con.execute(f"create table {table} as {select}", [LEAD_MODEL_VERSION, trained_at])
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        for name in frames:
            con.unregister(name)
