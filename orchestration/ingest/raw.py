"""Group `raw`: one asset per source table, loading new landing files into schema `raw`, each
with its Great Expectations suite and source freshness run as asset checks in one step."""

from pathlib import Path

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
    multi_asset_check,
)

from cdp.core.build_state import full_build_asked, inputs_signature, last_step, record_step
from cdp.core.sql import RAW_SCHEMA, quote
from cdp.ingest.declared import DECLARED_RELATIONS, publish
from cdp.ingest.load import load_table, raw_relation
from cdp.ingest.sources import Expectation, Table, declarations, tables
from orchestration.ingest.freshness import (
    FRESHNESS_CHECK,
    freshness_check_spec,
    freshness_result,
)
from orchestration.resources import WarehouseResource, warehouse_kind


def raw_asset_key(table: Table) -> AssetKey:
    # Matches dagster-dbt's default key for the dbt source, which joins the lineage.
    return AssetKey([table.source, table.name])


def _raw_asset(table: Table) -> AssetsDefinition:
    @asset(
        key=raw_asset_key(table),
        group_name="raw",
        kinds={warehouse_kind(), "python"},
        description=f"{table.description} Loaded from "
        + ("a PostgreSQL query" if table.format == "postgres" else f"`{table.landing_glob}`")
        + f" under the landing folder into `raw.{table.key}`.",
        metadata={"table": f"raw.{table.key}", "format": table.format},
    )
    def _load(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        # A file that cannot be read is rejected and reported, never raised: the table's last
        # good data stays and every other source and model still builds.
        with warehouse.connection() as con:
            result = load_table(con, table, Path(warehouse.landing_dir))
            total = con.execute(f"select count(*) from {raw_relation(table)}").fetchall()[0][0]
        context.log.info(
            f"{table.key}: {len(result.files_loaded)} new file(s), {result.rows_new} new rows, "
            f"{result.rows_quarantined} quarantined, {result.rows_suppressed} suppressed (erased "
            f"people), {len(result.files_skipped)} file(s) "
            "already loaded"
        )
        for problem in result.problems():
            context.log.warning(problem)
        return MaterializeResult(
            metadata={
                **result.as_metadata(),
                "rows_total": total,
                "files": MetadataValue.json(
                    {
                        "loaded": result.files_loaded,
                        "skipped": result.files_skipped,
                        "rejected": result.files_rejected,
                    }
                ),
            }
        )

    return _load


def _ge_expectation(expectation: Expectation):
    import great_expectations as gx

    if expectation.kind == "not_null":
        return gx.expectations.ExpectColumnValuesToNotBeNull(
            column=expectation.column, mostly=expectation.mostly
        )
    if expectation.kind == "in_set":
        return gx.expectations.ExpectColumnValuesToBeInSet(
            column=expectation.column,
            value_set=list(expectation.value_set),
            mostly=expectation.mostly,
        )
    if expectation.kind == "match_regex":
        return gx.expectations.ExpectColumnValuesToMatchRegex(
            column=expectation.column, regex=expectation.regex, mostly=expectation.mostly
        )
    raise ValueError(f"unknown expectation kind {expectation.kind!r}")


_GX_BATCH = None


def _gx_batch_definition():
    """One ephemeral Great Expectations context per process (it is slow to build)."""
    global _GX_BATCH
    if _GX_BATCH is None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = context.data_sources.add_pandas("raw_tables")
        _GX_BATCH = source.add_dataframe_asset("raw_column").add_batch_definition_whole_dataframe(
            "whole_column"
        )
    return _GX_BATCH


def run_expectation(con, table: Table, expectation: Expectation) -> AssetCheckResult:
    frame = con.execute(f"select {quote(expectation.column)} from {raw_relation(table)}").df()
    batch = _gx_batch_definition().get_batch(batch_parameters={"dataframe": frame})
    outcome = batch.validate(_ge_expectation(expectation))
    observed = outcome.result
    return AssetCheckResult(
        asset_key=raw_asset_key(table),
        check_name=_check_name(expectation),
        passed=bool(outcome.success),
        severity=_severity(expectation),
        metadata={
            "expectation": type(_ge_expectation(expectation)).__name__,
            "column": expectation.column,
            "mostly": expectation.mostly,
            "element_count": observed.get("element_count", 0),
            "unexpected_count": observed.get("unexpected_count", 0),
            "unexpected_percent": round(float(observed.get("unexpected_percent") or 0.0), 3),
            "sample_unexpected": MetadataValue.json(
                [str(v) for v in observed.get("partial_unexpected_list", [])[:10]]
            ),
        },
    )


def _severity(expectation: Expectation) -> AssetCheckSeverity:
    return AssetCheckSeverity.WARN if expectation.mostly < 1 else AssetCheckSeverity.ERROR


def _check_name(expectation: Expectation) -> str:
    return f"ge_{expectation.kind}_{expectation.column}"


def _expectation_result(con, table: Table, expectation: Expectation, signature: str, full: bool):
    """The expectation's result: run again only when `signature` (the table's rows and its
    expectations) changed since its last run, or a full build is asked."""
    step = f"{table.key}:{_check_name(expectation)}"
    last = last_step(con, step)
    if last is not None and last[0] == signature and not full:
        return AssetCheckResult(
            asset_key=raw_asset_key(table),
            check_name=_check_name(expectation),
            passed=last[1] == "pass",
            severity=_severity(expectation),
            metadata={"rerun": False, "why": "rows as at its last run"},
        )
    result = run_expectation(con, table, expectation)
    record_step(con, step, signature, "pass" if result.passed else "fail")
    return result


def _table_checks(table: Table, freshness: dict | None) -> AssetChecksDefinition | None:
    """The table's Great Expectations suite and its source freshness as checks of its asset,
    in one step: a step per check cost Dagster's per-step work 49 times a run."""
    key = raw_asset_key(table)
    specs = [
        AssetCheckSpec(
            _check_name(expectation),
            asset=key,
            description=f"Great Expectations: {expectation.kind} on `{expectation.column}`"
            + (f" (at least {expectation.mostly:.0%} of rows)" if expectation.mostly < 1 else ""),
        )
        for expectation in table.expectations
    ]
    if freshness:
        specs.append(freshness_check_spec(table, key))
    if not specs:
        return None

    @multi_asset_check(specs=specs, name=f"{table.key}_checks", can_subset=True)
    def _checks(context: AssetCheckExecutionContext, warehouse: WarehouseResource):
        selected = {check.name for check in context.selected_asset_check_keys}
        expectations = [e for e in table.expectations if _check_name(e) in selected]
        full = full_build_asked(context.run.tags)
        with warehouse.connection() as con:
            if expectations:
                # the table's rows, read once for all its expectations: the same answers
                # while neither changes
                signature = inputs_signature(
                    con, [f"{RAW_SCHEMA}.{table.key}"], repr(table.expectations)
                )
            for expectation in expectations:
                yield _expectation_result(con, table, expectation, signature, full)
            if freshness and FRESHNESS_CHECK in selected:
                yield freshness_result(con, table, freshness, key)

    return _checks


DECLARED_KEYS = [AssetKey(["declared", name]) for name in DECLARED_RELATIONS]


def _declared_person_relations() -> AssetsDefinition:
    @multi_asset(
        specs=[
            AssetSpec(
                key,
                group_name="raw",
                kinds={warehouse_kind(), "python"},
                description=f"raw.declared__{key.path[-1]}: the declared systems' "
                f"{key.path[-1]} by canonical role (cdp.ingest.declared.publish), read by the "
                "dbt sources declared.*.",
                deps=[
                    raw_asset_key(t)
                    for spec in declarations().declared_specs
                    for t, x in zip(spec.as_tables(), spec.tables, strict=True)
                    if x.entity == "person"
                ],
            )
            for key in DECLARED_KEYS
        ],
        name="declared_person_relations",
    )
    def declared_person_relations(context: AssetExecutionContext, warehouse: WarehouseResource):
        # A declaration that cannot be used is left out with a warning, so one bad file never
        # stops the other systems.
        declared = declarations()
        for problem in declared.problems:
            context.log.warning(f"source declaration left out: {problem}")
        with warehouse.connection() as con:
            published = publish(con, declared.declared_specs)
        for key in DECLARED_KEYS:
            yield MaterializeResult(
                asset_key=key,
                metadata={
                    **published,
                    "systems": ", ".join(s.system for s in declared.declared_specs) or "none",
                    "declarations_left_out": len(declared.problems),
                },
            )

    return declared_person_relations


def raw_assets() -> list[AssetsDefinition]:
    """One asset per declared source table, and the declared systems' person relations."""
    return [*(_raw_asset(t) for t in tables()), _declared_person_relations()]


def raw_asset_checks(freshness: dict[tuple[str, str], dict]) -> list[AssetChecksDefinition]:
    """One check step per raw table: its expectations and, where its dbt source declares one
    (`freshness`: declared_freshness), its source freshness."""
    checks = (_table_checks(t, freshness.get((t.source, t.name))) for t in tables())
    return [check for check in checks if check is not None]
