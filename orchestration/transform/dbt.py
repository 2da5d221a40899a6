"""Every dbt model, seed and snapshot as a Dagster asset; dbt tests as asset checks."""

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    Output,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from cdp.core.build_state import (
    BuildPlan,
    full_build_asked,
    plan_build,
    project_settings,
    record_build,
    selection_args,
    step_scope,
)
from cdp.core.config import PRODUCTION_DBT_EXCLUDE, dbt_log_file_args
from orchestration.resources import WarehouseResource


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
# in steps; a test runs in the step where all its parents exist (`step_scope`).
SELECT_TAG = "dagster_dbt/select"  # where @dbt_assets keeps a step's selection
BUILD = ["build", *PRODUCTION_DBT_EXCLUDE]
STEP_NAME = "cdp_dbt_models"


def translator() -> CdpDbtTranslator:
    # dbt tests on sources become checks of the raw assets that load those tables
    return CdpDbtTranslator(
        settings=DagsterDbtTranslatorSettings(
            enable_asset_checks=True, enable_source_tests_as_checks=True
        )
    )


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
        dagster_dbt_translator=translator(),
    )
    def cdp_dbt_models(
        context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ):
        yield from build_changed(context, dbt, warehouse, project)

    return cdp_dbt_models


def build_changed(
    context: AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    project: DbtProject,
):
    """This step's dbt build of what changed since the last successful build
    (`cdp.core.build_state`). Unchanged assets are reported as outputs with `rebuilt: false`
    (so the steps after them run) and their tests with the result they had, `rerun: false`.
    A run tagged `cdp/full_build=true` builds everything (the nightly schedule does)."""
    manifest = json.loads(project.manifest_path.read_text(encoding="utf-8"))
    full = full_build_asked(context.run.tags)
    with warehouse.connection() as con:
        plan = plan_build(con, manifest, project_settings(project.project_dir, BUILD), full=full)
    for problem in plan.problems:
        context.log.warning(problem)
    assets_def = context.assets_def
    keys = {
        spec.metadata["dagster_dbt/unique_id"]: spec.key
        for spec in assets_def.specs
        if spec.key in context.selected_asset_keys
    }
    step_select = context.op.tags.get(SELECT_TAG, "")
    scope = step_scope(manifest, set(keys), _sources_named(manifest, step_select))
    subset = len(keys) < len(assets_def.keys)
    selection = selection_args(manifest, plan, scope, None if subset else ["--select", step_select])
    checks = {key.name: key for key in context.selected_asset_check_keys}
    ancestors = _ancestors_within(manifest, set(keys))
    waiting = [u for u in ancestors if u in plan.unchanged]
    rebuilt = len(ancestors) - len(waiting)
    why = f" ({plan.reason})" if plan.reason else "; the rest are as at their last build"
    context.log.info(f"dbt: {rebuilt} of {len(keys)} assets to build{why}")

    def unchanged_until(unique_id: str | None):
        """Outputs of unchanged assets above `unique_id` (all, for None), in dependency order,
        each with its tests' last results."""
        for waiting_id in list(waiting):
            if unique_id is None or waiting_id in ancestors[unique_id]:
                waiting.remove(waiting_id)
                yield Output(
                    None,
                    output_name=assets_def.get_output_name_for_asset_key(keys[waiting_id]),
                    metadata={"rebuilt": False, "why": "code and inputs as at its last build"},
                )
                yield from _last_results(manifest, plan, checks, keys[waiting_id])

    # unchanged assets with nothing rebuilt above them first
    for unique_id in [u for u in waiting if ancestors[u] <= plan.unchanged.keys()]:
        yield from unchanged_until(unique_id)
    if selection is not None:
        invocation = dbt.cli(
            [*BUILD, *selection, *dbt_log_file_args()],
            manifest=manifest,
            dagster_dbt_translator=translator(),
            raise_on_error=False,
            target_path=_step_target_path(context),
        )
        by_key = {key: unique_id for unique_id, key in keys.items()}
        for event in _as_step_events(context, invocation.stream()):
            key = getattr(event, "asset_key", None)
            if isinstance(event, Output):
                key = assets_def.keys_by_output_name.get(event.output_name)
            if waiting and key in by_key:
                yield from unchanged_until(by_key[key])
            yield event
    yield from unchanged_until(None)
    yield from _last_results(manifest, plan, checks, None)
    if selection is None:
        return
    with warehouse.connection() as con:
        recorded = record_build(con, plan, invocation.get_artifact("run_results.json"))
    context.log.info(f"dbt: {recorded} nodes recorded as built with their inputs")
    if not invocation.is_successful():
        raise invocation.get_error() or RuntimeError("dbt build failed")


def _step_target_path(context: AssetExecutionContext) -> Path:
    """Artifacts and log per step and run, named as dagster-dbt names them."""
    base = Path(os.environ.get("DBT_TARGET_PATH", "target"))
    return base / f"{context.op.name}-{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}"


def _sources_named(manifest: Mapping[str, Any], select: str) -> set[str]:
    named = {f"source:{s['source_name']}.{s['name']}": u for u, s in manifest["sources"].items()}
    return {named[token] for token in select.split() if token in named}


def _as_step_events(context: AssetExecutionContext, events):
    """dbt's events, run without the step's context (which would impose its own selection),
    as the step's outputs and check results."""
    assets_def = context.assets_def
    for event in events:
        if isinstance(event, AssetMaterialization) and event.asset_key in assets_def.keys:
            yield Output(
                None,
                output_name=assets_def.get_output_name_for_asset_key(event.asset_key),
                metadata=event.metadata,
            )
        elif isinstance(event, AssetCheckEvaluation):
            if (
                AssetCheckKey(event.asset_key, event.check_name)
                in context.selected_asset_check_keys
            ):
                yield AssetCheckResult(
                    asset_key=event.asset_key,
                    check_name=event.check_name,
                    passed=event.passed,
                    severity=event.severity,
                    metadata=event.metadata,
                )
        else:
            yield event


def _last_results(
    manifest: Mapping[str, Any],
    plan: BuildPlan,
    checks: dict[str, AssetCheckKey],
    asset_key: AssetKey | None,
):
    """The results unchanged tests had at their last run, as this run's check results (on the
    asset `asset_key`, or all that are left), each saying it was not rerun; those yielded leave
    `checks`."""
    for unique_id, status in sorted(plan.unchanged.items()):
        node = manifest["nodes"][unique_id]
        key = checks.get(node["name"]) if node["resource_type"] == "test" else None
        if key is None or (asset_key is not None and key.asset_key != asset_key):
            continue
        del checks[node["name"]]
        yield AssetCheckResult(
            asset_key=key.asset_key,
            check_name=key.name,
            passed=status == "pass",
            severity=AssetCheckSeverity.WARN if status == "warn" else AssetCheckSeverity.ERROR,
            metadata={"status": status, "rerun": False, "why": "code and inputs as at last run"},
        )


def _ancestors_within(manifest: Mapping[str, Any], step_ids: set[str]) -> dict[str, set[str]]:
    """Per node of the step, in dependency order, its ancestors (and itself) in the step."""
    nodes, found, order = manifest["nodes"], {}, []

    def visit(unique_id: str) -> set[str]:
        if unique_id not in found:
            found[unique_id] = {unique_id}  # a cycle is dbt's to report
            for parent in nodes[unique_id].get("depends_on", {}).get("nodes", []):
                if parent in step_ids:
                    found[unique_id] |= visit(parent)
            order.append(unique_id)
        return found[unique_id]

    for unique_id in sorted(step_ids):
        visit(unique_id)
    return {unique_id: found[unique_id] for unique_id in order}


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
