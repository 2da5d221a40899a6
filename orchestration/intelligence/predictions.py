"""Group `ml`: churn and 12-month CLV models trained on the warehouse's history each run, scoring
every customer, and the predictive lead score beside the rule score. Holdout metrics and feature
importance land in schema ml and in the assets' metadata; checks compare the models with naive
baselines and the lead model with the rule score."""

from pathlib import Path

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

from cdp.core.build_state import (
    existing_relations,
    full_build_asked,
    inputs_signature,
    last_step,
    record_step,
)
from cdp.intelligence import tables
from cdp.intelligence.tables import (
    IMPORTANCE,
    INPUTS,
    LEAD_CALIBRATION,
    LEAD_INPUTS,
    LEAD_LIFT,
    LEAD_MODEL_VERSION,
    LEAD_PREDICTIONS,
    LEAD_RUNS,
    MODEL_VERSION,
    PREDICTIONS,
    RUNS,
    NotEnoughData,
    latest_metrics,
)
from orchestration.resources import WarehouseResource, warehouse_kind
from orchestration.transform.dbt import dbt_model_key

PREDICTIONS_KEY = AssetKey(["ml", "customer_predictions"])  # the dbt source's key
LEAD_PREDICTIONS_KEY = AssetKey(["ml", "lead_predictions"])


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


def lead_predictions(models: AssetsDefinition) -> AssetsDefinition:
    @asset(
        key=LEAD_PREDICTIONS_KEY,
        group_name="ml",
        deps=[dbt_model_key(models, relation.split(".")[-1]) for relation in LEAD_INPUTS],
        kinds={"scikitlearn", warehouse_kind()},
        description=f"Chance of each lead to be accepted by sales, with its reasons, in "
        f"`{LEAD_PREDICTIONS}`; model and rule score compared on the newest leads in "
        f"`{LEAD_RUNS}` and `{LEAD_LIFT}`, the rules' points refitted on "
        f"outcomes in `{LEAD_CALIBRATION}`.",
    )
    def lead_predictions(
        context: AssetExecutionContext, warehouse: WarehouseResource
    ) -> MaterializeResult:
        run = _trained(
            context,
            warehouse,
            _train_lead_model,
            "lead scores",
            inputs=LEAD_INPUTS,
            version=LEAD_MODEL_VERSION,
            predictions=LEAD_PREDICTIONS,
        )
        if run is UNCHANGED:
            return MaterializeResult(metadata=UNCHANGED_METADATA)
        if run is None:
            return MaterializeResult(metadata={"skipped": "not enough lead outcomes"})
        context.log.info(
            f"lead model: AUC {run.metrics['model_auc_sal']:.3f} against "
            f"{run.metrics['rule_auc_sal']:.3f} for the rule score on {run.holdout_rows} leads "
            f"since {run.holdout_since:%Y-%m-%d}; scored {run.scored}"
        )
        return MaterializeResult(
            metadata={
                "model_run_id": run.run_id,
                "train_rows": run.train_rows,
                "holdout_rows": run.holdout_rows,
                "scored": run.scored,
                **{k: round(v, 4) for k, v in run.metrics.items()},
                "lift_by_decile": MetadataValue.md(
                    run.lift.pivot(index="decile", columns="scorer", values="lift")
                    .round(2)
                    .to_markdown()
                ),
            }
        )

    return lead_predictions


UNCHANGED = object()
UNCHANGED_METADATA = {"rebuilt": False, "why": "inputs and code as at the last training"}


def _trained(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    train,
    what: str,
    *,
    inputs: tuple[str, ...],
    version: str,
    predictions: str,
):
    """The training run; UNCHANGED when the tables the model reads (`inputs`), its `version`
    and the code of its package are as at the last training and its `predictions` table is
    there (the scores stay); None when the data cannot support a model: an optional stage, the
    run goes on and the last scores stay (audiences and next best action work without)."""
    full = full_build_asked(context.run.tags)
    step = context.asset_key.to_user_string()
    with warehouse.connection() as con:
        # the whole package: a model's module imports others (BG/NBD, the feature SQL)
        package = Path(tables.__file__).parent
        code = [path.read_text(encoding="utf-8") for path in sorted(package.glob("*.py"))]
        signature = inputs_signature(con, inputs, [version, *code])
        scores = tuple(predictions.split("."))
        last = last_step(con, step)
        kept = scores in existing_relations(con) and last is not None and last[0] == signature
        if kept and not full:
            context.log.info(f"{what}: inputs unchanged since the last training, scores kept")
            return UNCHANGED
        try:
            run = train(con)
        except NotEnoughData as exc:
            context.log.warning(f"{what} skipped, the last ones stay: {exc}")
            return None
        record_step(con, step, signature)
        return run


# The model modules load scikit-learn and SciPy (1.2 s): imported only when a model is fitted,
# not on a run whose inputs are unchanged.
def _train_customer_models(con):
    from cdp.intelligence.predict import train_and_score

    return train_and_score(con)


def _train_lead_model(con):
    from cdp.intelligence.lead_scoring import train_and_score_leads

    return train_and_score_leads(con)


def _train_and_score(context: AssetExecutionContext, warehouse: WarehouseResource):
    run = _trained(
        context,
        warehouse,
        _train_customer_models,
        "predictions",
        inputs=INPUTS,
        version=MODEL_VERSION,
        predictions=PREDICTIONS,
    )
    if run is UNCHANGED:
        return MaterializeResult(metadata=UNCHANGED_METADATA)
    if run is None:
        return MaterializeResult(metadata={"skipped": "not enough data"})
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
        metrics = latest_metrics(con, RUNS)
    if not metrics:
        return AssetCheckResult(
            passed=True, metadata={"skipped": "no model trained yet (not enough data)"}
        )
    churn_ok = metrics["churn_auc"] > max(0.5, metrics["churn_auc_recency_baseline"])
    clv_ok = metrics["clv_mae_eur"] < metrics["clv_mae_mean_baseline_eur"]
    return AssetCheckResult(
        passed=churn_ok and clv_ok,
        severity=AssetCheckSeverity.WARN,
        metadata={k: round(v, 4) for k, v in metrics.items()},
    )


@asset_check(
    asset=LEAD_PREDICTIONS_KEY,
    name="lead_model_beats_rule_score",
    description="On the newest leads with a known outcome, the predictive lead score ranks "
    "sales-accepted leads better (AUC) than the rule score.",
)
def lead_model_beats_rule_score(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connection(read_only=True) as con:
        metrics = latest_metrics(con, LEAD_RUNS)
    if not metrics:
        return AssetCheckResult(
            passed=True, metadata={"skipped": "no lead model trained yet (not enough outcomes)"}
        )
    return AssetCheckResult(
        passed=metrics["model_auc_sal"] > max(0.5, metrics["rule_auc_sal"]),
        severity=AssetCheckSeverity.WARN,
        metadata={k: round(v, 4) for k, v in metrics.items()},
    )
