"""Domain transform: every dbt model, seed and snapshot (dbt tests as checks), and the matcher
step on warehouses where dbt cannot run it."""

from dagster import AssetsDefinition, Definitions
from dagster_dbt import DbtProject

from orchestration.transform.matcher import matcher_assets


def definitions(project: DbtProject, models: AssetsDefinition) -> Definitions:
    return Definitions(assets=[models, *matcher_assets(project, models)])
