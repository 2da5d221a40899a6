"""Group `ml`: churn and 12-month CLV models trained on the warehouse's history each run, scoring
every customer. Holdout metrics and feature importance land in schema ml and in the asset's
metadata; a check compares the models with naive baselines."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from cdp.core.sql import table_exists
from cdp.intelligence.predict import (
    IMPORTANCE,
    INPUTS,
    PREDICTIONS,
    RUNS,
    NotEnoughData,
    train_and_score,
)
from orchestration.resources import WarehouseResource, warehouse_kind
from orchestration.transform.dbt import dbt_model_key

PREDICTIONS_KEY = AssetKey(["ml", "customer_predictions"])  # the dbt source's key


def customer_predictions(models: AssetsDefinition) -> AssetsDefinition:
    """The models the predictions read (their list lives beside the SQL that reads them)."""

    @asset(
        key=PREDICTIONS_KEY,
        group_name="ml",
        deps=[dbt_model_key(models, relation.split(".")[-1]) for relation in INPUTS],
        kinds={"scikitlearn", warehouse_kind()},
        description=f"Churn probability and predicted 12-month CLV per customer in "
        f"`{PREDICTIONS}`; holdout metrics in `{RUNS}`, feature importance in `{IMPORTANCE}`.",
    )
    def customer_predictions(
        context: AssetExecutionContext, warehouse: WarehouseResource
    ) -> MaterializeResult:
        return _train_and_score(context, warehouse)

    return customer_predictions


def _train_and_score(context: AssetExecutionContext, warehouse: WarehouseResource):
    with warehouse.connection() as con:
        try:
            run = train_and_score(con)
        except NotEnoughData as exc:
            # Optional stage: the run goes on; audiences and next best action use no scores.
            context.log.warning(f"predictions skipped, the last ones stay: {exc}")
            return MaterializeResult(metadata={"skipped": str(exc)})
    top = run.importance.groupby("model").head(3)
    context.log.info(
        f"trained on {run.train_rows} customers as of {run.cutoff:%Y-%m-%d}, "
        f"{run.holdout_rows} held out; scored {run.scored}"
    )
    return MaterializeResult(
        metadata={
            "model_run_id": run.run_id,
            "training_cutoff": run.cutoff.isoformat(timespec="seconds"),
            "train_rows": run.train_rows,
            "holdout_rows": run.holdout_rows,
            "scored": run.scored,
            **{k: round(v, 4) for k, v in run.metrics.items()},
            "top_features": MetadataValue.md(
                top[["model", "feature", "importance_mean", "coefficient", "description"]]
                .round(4)
                .to_markdown(index=False)
            ),
        }
    )


@asset_check(
    asset=PREDICTIONS_KEY,
    name="models_beat_naive_baselines",
    description="On the holdout, churn AUC beats ranking by recency and CLV error beats "
    "predicting everyone the average.",
)
def models_beat_naive_baselines(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connection(read_only=True) as con:
        schema, table = RUNS.split(".")
        latest = (
            con.execute(
                f"select metric, value from {RUNS} order by trained_at desc limit 1"
            ).fetchone()
            if table_exists(con, schema, table)
            else None
        )
    if latest is None:
        return AssetCheckResult(
            passed=True, metadata={"skipped": "no model trained yet (not enough data)"}
        )
    metric, value = latest
    metrics = dict(zip(metric, value, strict=True))
    churn_ok = metrics["churn_auc"] > max(0.5, metrics["churn_auc_recency_baseline"])
    clv_ok = metrics["clv_mae_eur"] < metrics["clv_mae_mean_baseline_eur"]
    return AssetCheckResult(
        passed=churn_ok and clv_ok,
        severity=AssetCheckSeverity.WARN,
        metadata={k: round(v, 4) for k, v in metrics.items()},
    )
