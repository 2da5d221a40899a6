"""Group `enrichment`: firmographics for the CRM's company domains from an external API, cached
in the warehouse. It feeds lead scoring through the dbt source enrichment.company_firmographics
and never fails the run: an unreachable or misconfigured API only leaves the cache as it was,
which the asset check reports."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    asset,
    asset_check,
)

from cdp.core.http import AuthenticationFailed, RequestRejected
from cdp.ingest.enrichment import (
    CACHE,
    EnrichmentNotConfigured,
    FirmographicsClient,
    cache_summary,
    enrich,
)
from cdp.ingest.sources import table
from orchestration.ingest.raw import raw_asset_key
from orchestration.resources import WarehouseResource, warehouse_kind

FIRMOGRAPHICS = AssetKey(["enrichment", "company_firmographics"])  # the dbt source's key


def company_firmographics() -> AssetsDefinition:
    """The enrichment asset; its kinds follow the warehouse target."""

    @asset(
        key=FIRMOGRAPHICS,
        group_name="enrichment",
        deps=[raw_asset_key(table("crm__contacts")), raw_asset_key(table("crm__accounts"))],
        kinds={warehouse_kind(), "python"},
        description="Company data (industry, employees, country, revenue) per company email domain "
        f"from the firmographics API, cached in `{CACHE}` for 30 days.",
    )
    def company_firmographics(
        context: AssetExecutionContext, warehouse: WarehouseResource
    ) -> MaterializeResult:
        return _enrich(context, warehouse)

    return company_firmographics


def _enrich(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    result, skipped = None, ""
    with warehouse.connection() as con:
        try:
            client = FirmographicsClient.from_env()
            result = enrich(
                con,
                client,
                progress=lambda done, total: context.log.info(f"{done}/{total} domains looked up"),
            )
        except (EnrichmentNotConfigured, RequestRejected, AuthenticationFailed) as exc:
            context.log.warning(f"enrichment skipped, the cache stays as it is: {exc}")
            skipped = str(exc)
        cached = {f"cache_{k}": v for k, v in cache_summary(con).items()}
    if result is None:
        return MaterializeResult(metadata={"skipped": skipped, **cached})
    if result.stopped_because:
        context.log.warning(f"enrichment stopped early: {result.stopped_because}")
    context.log.info(
        f"{result.domains} company domains: {result.cached} cached, {result.looked_up} looked up "
        f"({result.counts}), {result.deferred} left for the next run"
    )
    return MaterializeResult(
        metadata={
            "domains": result.domains,
            "from_cache": result.cached,
            "looked_up": result.looked_up,
            "deferred": result.deferred,
            "api_calls": result.calls,
            "stopped_because": result.stopped_because or "-",
            **cached,
        }
    )


@asset_check(
    asset=FIRMOGRAPHICS,
    name="lookups_mostly_answered",
    description="At most 10 % of cached domains failed or still wait for the API "
    "(they are retried on the next run).",
)
def lookups_mostly_answered(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connection() as con:
        summary = cache_summary(con)
    total = sum(summary.values())
    open_ = summary.get("error", 0) + summary.get("pending", 0)
    return AssetCheckResult(
        passed=total > 0 and open_ <= 0.1 * total,
        severity=AssetCheckSeverity.WARN,
        metadata={"domains": total, "failed_or_pending": open_, **summary},
    )
