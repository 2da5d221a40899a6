"""Domain intelligence: churn and CLV models and the predictive lead score, trained and scored
each run, checked against naive baselines and the rule score. (Traits, audiences, funnel, leads
and attribution are dbt models.)"""

from dagster import AssetsDefinition, Definitions

from orchestration.intelligence.predictions import (
    customer_predictions,
    lead_model_beats_rule_score,
    lead_predictions,
    models_beat_naive_baselines,
)


def definitions(models: AssetsDefinition) -> Definitions:
    return Definitions(
        assets=[customer_predictions(models), lead_predictions(models)],
        asset_checks=[models_beat_naive_baselines, lead_model_beats_rule_score],
    )
