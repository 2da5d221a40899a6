"""The probabilistic matcher as a Dagster step on warehouses without dbt Python models
(PostgreSQL): it scores dbt's match candidates between the dbt steps and writes the pairs the
dbt source matcher.identity_match_pairs reads. On DuckDB the matcher is the dbt Python model
int_identity_matches, so this asset is not defined there."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from cdp.core.warehouse import target
from cdp.identity.matching import PAIRS_TABLE, matcher_config, score_in_warehouse
from orchestration.assets.dbt import cdp_dbt_models, dbt_model_key
from orchestration.project import dbt_project
from orchestration.resources import WarehouseResource

MATCH_PAIRS_KEY = AssetKey(["matcher", PAIRS_TABLE])  # the dbt source's key


@asset(
    key=MATCH_PAIRS_KEY,
    group_name="intermediate",
    deps=[dbt_model_key("int_match_candidates")],
    kinds={"splink", "postgres"},
    description="Probabilistic matches (Splink) between the records of int_match_candidates, "
    "scored incrementally on a local DuckDB and written to intermediate.identity_match_pairs.",
)
def identity_match_pairs(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    config = matcher_config(dbt_project.manifest_path)
    candidates = dbt_model_key("int_match_candidates").path[-1]
    with warehouse.connection() as con:
        run = score_in_warehouse(
            con,
            schema=config["schema"],
            candidates_relation=f"{config['schema']}.{candidates}",
            floor=config["floor"],
            rescore_all=config["rescore_all"],
            overrides=config["overrides"],
        )
    context.log.info(
        f"matcher ({run['mode']}): {run['scored_records']:,} of {run['records']:,} records "
        f"scored, {run['pairs']:,} pairs kept"
    )
    return MaterializeResult(metadata=run)


# Defined where dbt cannot run the matcher itself; the dbt manifest of this target reads it.
matcher_assets = (
    [identity_match_pairs]
    if target() == "postgres" and any(k == MATCH_PAIRS_KEY for k in cdp_dbt_models.dependency_keys)
    else []
)
