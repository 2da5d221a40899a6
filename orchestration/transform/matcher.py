"""The probabilistic matcher as a Dagster step on warehouses without dbt Python models
(PostgreSQL): it scores dbt's match candidates between the dbt steps and writes the pairs the
dbt source matcher.identity_match_pairs reads. On DuckDB the matcher is the dbt Python model
int_identity_matches, so this asset is not defined there."""

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, asset
from dagster_dbt import DbtProject

from cdp.identity.matching import PAIRS_TABLE, matcher_config, score_in_warehouse
from orchestration.resources import WarehouseResource, warehouse_kind
from orchestration.transform.dbt import dbt_model_key

MATCH_PAIRS_KEY = AssetKey(["matcher", PAIRS_TABLE])  # the dbt source's key
CANDIDATES = "int_match_candidates"


def matcher_assets(project: DbtProject, models: AssetsDefinition) -> list[AssetsDefinition]:
    """The matcher step where dbt cannot run it itself (the target's manifest reads its
    output as a source); none elsewhere."""
    reads_pairs = any(key == MATCH_PAIRS_KEY for key in models.dependency_keys)
    if warehouse_kind() != "postgres" or not reads_pairs:
        return []
    return [_identity_match_pairs(project, models)]


def _identity_match_pairs(project: DbtProject, models: AssetsDefinition) -> AssetsDefinition:
    @asset(
        key=MATCH_PAIRS_KEY,
        group_name="intermediate",
        deps=[dbt_model_key(models, CANDIDATES)],
        kinds={"splink", warehouse_kind()},
        description="Probabilistic matches (Splink) between the records of int_match_candidates,"
        " scored incrementally on a local DuckDB and written to "
        "intermediate.identity_match_pairs.",
    )
    def identity_match_pairs(
        context: AssetExecutionContext, warehouse: WarehouseResource
    ) -> MaterializeResult:
        return _score(context, warehouse, project)

    return identity_match_pairs


def _score(context: AssetExecutionContext, warehouse: WarehouseResource, project: DbtProject):
    config = matcher_config(project.manifest_path)
    with warehouse.connection() as con:
        run = score_in_warehouse(
            con,
            schema=config["schema"],
            candidates_relation=f"{config['schema']}.{CANDIDATES}",
            floor=config["floor"],
            rescore_all=config["rescore_all"],
            overrides=config["overrides"],
        )
    context.log.info(
        f"matcher ({run['mode']}): {run['scored_records']:,} of {run['records']:,} records "
        f"scored, {run['pairs']:,} pairs kept"
    )
    return MaterializeResult(metadata=run)
