"""Where the models keep their results, what they read, and the record of their runs: what
Dagster's definitions and the CLI need at every start, kept apart from the models, whose modules
load scikit-learn (0.6 s)."""

from __future__ import annotations

from cdp.core.sql import table_exists
from cdp.core.warehouse import Warehouse

SCHEMA = "ml"

# Churn and 12-month CLV (cdp.intelligence.predict)
PREDICTIONS = f"{SCHEMA}.customer_predictions"
RUNS = f"{SCHEMA}.model_runs"
IMPORTANCE = f"{SCHEMA}.feature_importance"
# Every relation its SQL reads: Dagster's deps of the predictions come from here, and a test
# holds this list and the SQL equal.
INPUTS = (
    "marts.customer_transactions",
    "marts.data_as_of",
    "marts.customer_events",
)
# Linear, gradient-boosted and BG/NBD models compete on the holdout; the better one is served.
MODEL_VERSION = "glm-gbm-bgnbd-v2"

# The predictive lead score (cdp.intelligence.lead_scoring)
LEAD_PREDICTIONS = f"{SCHEMA}.lead_predictions"
LEAD_RUNS = f"{SCHEMA}.lead_model_runs"
LEAD_LIFT = f"{SCHEMA}.lead_score_lift"
LEAD_CALIBRATION = f"{SCHEMA}.lead_rule_calibration"
LEAD_INPUTS = ("marts.lead_scores", "marts.lead_funnel", "marts.data_as_of")
LEAD_MODEL_VERSION = "lead-glm-v1"


class NotEnoughData(ValueError):
    """The warehouse's data cannot support a model (no purchases, too few customers): the
    step is skipped, the last predictions stay."""


def record_run(con: Warehouse, table: str, time_column: str, time, run, version, trained_at):
    """Append a training run and its holdout metrics to `table` (created if missing): its id,
    version, as-of time, `time_column` (what bounds its training data), row counts."""
    con.execute(
        f"""create table if not exists {table} (
            run_id varchar primary key, model_version varchar, trained_at timestamp,
            as_of timestamp, {time_column} timestamp, train_rows integer,
            holdout_rows integer, scored_rows integer, metric varchar[],
            value double precision[])"""
    )
    con.execute(
        f"insert into {table} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run.run_id,
            version,
            trained_at,
            run.as_of,
            time,
            run.train_rows,
            run.holdout_rows,
            run.scored,
            list(run.metrics),
            list(run.metrics.values()),
        ],
    )


def latest_metrics(con: Warehouse, table: str = RUNS) -> dict[str, float]:
    """The newest run's holdout metrics in `table`; empty before the first run."""
    schema, name = table.split(".")
    if not table_exists(con, schema, name):
        return {}
    found = con.execute(
        f"select metric, value from {table} order by trained_at desc limit 1"
    ).fetchone()
    return dict(zip(found[0], found[1], strict=True)) if found else {}
