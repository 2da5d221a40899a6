"""Every dbt model, seed and snapshot as a Dagster asset; dbt tests as asset checks."""

from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, AssetSpec
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from cdp.core.config import PRODUCTION_DBT_EXCLUDE


class CdpDbtTranslator(DagsterDbtTranslator):
    """Groups follow the folder layers (staging, intermediate, marts); seeds are `reference`."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "seed":
            return spec.replace_attributes(group_name="reference")
        if props["resource_type"] == "snapshot":
            return spec.replace_attributes(group_name="snapshots")
        if props["resource_type"] == "model":
            layer = props["fqn"][1] if len(props["fqn"]) > 2 else props["resource_type"]
            return spec.replace_attributes(group_name=layer)
        return spec


# Python assets sit between dbt models (enrichment, predictions), so a run builds dbt in several
# steps; "buildable" runs a test only in the step where all its parents exist.
PRODUCTION_BUILD = ["build", "--indirect-selection", "buildable", *PRODUCTION_DBT_EXCLUDE]


def dbt_models(project: DbtProject) -> AssetsDefinition:
    """Every node of the project's manifest as an asset (the manifest must be prepared)."""

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=CdpDbtTranslator(
            # dbt tests on sources become checks of the raw assets that load those tables
            settings=DagsterDbtTranslatorSettings(
                enable_asset_checks=True, enable_source_tests_as_checks=True
            )
        ),
    )
    def cdp_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(PRODUCTION_BUILD, context=context).stream()

    return cdp_dbt_models


def dbt_model_key(models: AssetsDefinition, model: str) -> AssetKey:
    """The asset key of a dbt model, by model name; a model the manifest lacks (a sync or an
    asset names a model added since the manifest was parsed) is named in the error."""
    found = next((key for key in models.keys if key.path[-1] == model), None)
    if found is None:
        raise LookupError(
            f"dbt model {model!r} is not in the parsed dbt manifest: run `make manifest` "
            "(dbt parse) after adding a model"
        )
    return found
