"""Domain intelligence: churn and CLV models trained and scored each run, checked against
naive baselines. (Traits, audiences, funnel, leads and attribution are dbt models.)"""

from dagster import AssetsDefinition, Definitions

from orchestration.intelligence.predictions import customer_predictions, models_beat_naive_baselines


def definitions(models: AssetsDefinition) -> Definitions:
    return Definitions(
        assets=[customer_predictions(models)], asset_checks=[models_beat_naive_baselines]
    )
