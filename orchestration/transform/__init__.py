"""Domain transform: every dbt model, seed and snapshot (dbt tests as checks), and the matcher
step on warehouses where dbt cannot run it."""

from dagster import AssetsDefinition, Definitions
from dagster_dbt import DbtProject

from orchestration.transform.dbt import dbt_steps
from orchestration.transform.matcher import matcher_assets


def definitions(project: DbtProject, models: AssetsDefinition, others: Definitions) -> Definitions:
    """The dbt assets, in as few dbt commands as the Python assets of `others` (and the matcher)
    between them allow."""
    matcher = matcher_assets(project, models)
    python_assets = [
        a for a in [*matcher, *(others.assets or [])] if isinstance(a, AssetsDefinition)
    ]
    return Definitions(assets=[*dbt_steps(project, models, python_assets), *matcher])
