"""Every dbt model, seed and snapshot as a Dagster asset; dbt tests as asset checks."""

import json
from collections.abc import Mapping, Sequence
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


# Python assets that read dbt models (predictions) feed models after them, so a run builds dbt
# in steps; "buildable" runs a test only in the step where all its parents exist.
PRODUCTION_BUILD = ["build", "--indirect-selection", "buildable", *PRODUCTION_DBT_EXCLUDE]
STEP_NAME = "cdp_dbt_models"


def dbt_models(
    project: DbtProject, select: str = "fqn:*", name: str = STEP_NAME
) -> AssetsDefinition:
    """The project's manifest's nodes (all, or those `select` picks) as assets built by one dbt
    command (the manifest must be prepared)."""

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=select,
        name=name,
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


def dbt_steps(
    project: DbtProject, models: AssetsDefinition, python_assets: Sequence[AssetsDefinition]
) -> list[AssetsDefinition]:
    """`models` cut into as few dbt commands as the Python assets between them need: a model
    runs in a later step only when a path to it leaves dbt for a Python asset that reads dbt
    models (predictions; the matcher on PostgreSQL). Left whole, Dagster would cut the dbt asset
    at every Python asset on any path (raw loads, enrichment too): four dbt commands of 5-7 s
    each in the demo's run instead of two."""
    levels = _levels(models, python_assets)
    stage = {key: levels[key] for key in models.keys}
    if len(set(stage.values())) <= 1:
        return [models]
    manifest = json.loads(project.manifest_path.read_text(encoding="utf-8"))
    translator = CdpDbtTranslator()
    selectors: dict[int, list[str]] = {number: [] for number in set(stage.values())}
    for spec in models.specs:
        node = manifest["nodes"][spec.metadata["dagster_dbt/unique_id"]]
        selectors[stage[spec.key]].append("fqn:" + ".".join(node["fqn"]))
    # tests on a source run in the first step after the asset that writes it
    for unique_id, source in manifest["sources"].items():
        key = translator.get_asset_spec(manifest, unique_id, project).key
        number = min((n for n in selectors if n >= levels.get(key, 0)), default=None)
        if number is not None:
            selectors[number].append(f"source:{source['source_name']}.{source['name']}")
    steps = []
    for number, selected in sorted(selectors.items()):
        name = STEP_NAME if number == 0 else f"{STEP_NAME}_{number + 1}"
        step = dbt_models(project, select=" ".join(sorted(selected)), name=name)
        if set(step.keys) != {key for key, at in stage.items() if at == number}:
            # an fqn also selects what lies under it: a folder named like a model
            raise ValueError(f"dbt step {name}: the selection by fqn does not pick its models")
        steps.append(step)
    return steps


def _levels(
    models: AssetsDefinition, python_assets: Sequence[AssetsDefinition]
) -> dict[AssetKey, int]:
    """Per asset, how many Python assets reading dbt models lie on the longest path to it (the
    dbt assets and the Python assets' own keys)."""
    upstream = {key: deps for a in python_assets for key, deps in a.asset_deps.items()}
    upstream.update(models.asset_deps)
    dbt_keys = set(models.keys)
    levels: dict[AssetKey, int] = {}

    def level(key: AssetKey) -> int:
        if key not in levels:
            levels[key] = 0  # a cycle is Dagster's to report; this only orders steps
            # a Python asset reading a dbt model runs after that model's step
            bump = 0 if key in dbt_keys else 1
            levels[key] = max(
                (
                    level(parent) + (bump if parent in dbt_keys else 0)
                    for parent in upstream.get(key, ())
                ),
                default=0,
            )
        return levels[key]

    for key in [*dbt_keys, *upstream]:
        level(key)
    return levels


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
