"""What a run did, in a few lines: rows per layer, quarantined rows, checks."""

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cdp.core.sql import RAW_SCHEMA, table_exists
from cdp.core.warehouse import connect_warehouse, describe


def layer_row_counts() -> dict[str, tuple[int, int]]:
    """Schema -> (tables, rows) for every schema of the warehouse except internals."""
    con = connect_warehouse(read_only=True)
    try:
        tables = con.execute("""
            select table_schema, table_name from information_schema.tables
            where table_type = 'BASE TABLE' and table_name not like '\\_%' escape '\\'
              and table_name <> 'quarantine'
            order by 1, 2""").fetchall()
        counts: dict[str, list[int]] = {}
        for schema, name in tables:
            if not con.holds_cdp_data(schema):
                continue
            rows = con.execute(f'select count(*) from "{schema}"."{name}"').fetchall()[0][0]
            entry = counts.setdefault(schema, [0, 0])
            entry[0] += 1
            entry[1] += rows
        quarantined = (
            con.execute("select count(*) from raw.quarantine").fetchall()[0][0]
            if table_exists(con, RAW_SCHEMA, "quarantine")
            else 0
        )
    finally:
        con.close()
    result = {schema: (t, r) for schema, (t, r) in counts.items()}
    result["quarantine"] = (1, quarantined)
    return result


def print_run_summary(console: Console, result, seconds: float) -> None:
    layers = layer_row_counts()
    table = Table(title=f"Warehouse {describe()}")
    table.add_column("schema")
    table.add_column("tables", justify="right")
    table.add_column("rows", justify="right")
    order = ["raw", "reference", "staging", "intermediate", "marts", "snapshots", "quarantine"]
    for schema in sorted(layers, key=lambda s: order.index(s) if s in order else 99):
        tables, rows = layers[schema]
        table.add_row(schema, str(tables), f"{rows:,}")
    console.print(table)
    loaded = Counter()
    rejected: dict[str, str] = {}
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        if "rows_new" in meta:
            for field in (
                "rows_new",
                "rows_quarantined",
                "rows_suppressed",
                "values_invalid",
                "files_loaded",
                "files_skipped",
            ):
                loaded[field] += meta[field].value if field in meta else 0
            if "files" in meta:
                rejected.update(meta["files"].value.get("rejected") or {})
    if loaded:
        console.print(
            f"Raw loads: {loaded['rows_new']:,} new rows from {loaded['files_loaded']} new "
            f"file(s), {loaded['rows_quarantined']:,} rows quarantined, "
            + (
                f"{loaded['rows_suppressed']:,} rows of erased people dropped, "
                if loaded["rows_suppressed"]
                else ""
            )
            + (
                f"{loaded['values_invalid']:,} values unparseable (kept in _invalid_values), "
                if loaded["values_invalid"]
                else ""
            )
            + f"{loaded['files_skipped']} file(s) already loaded"
        )
    for name, reason in sorted(rejected.items()):
        console.print(
            f"  [yellow]rejected[/yellow] {name}: {reason}. Fix it, then `cdp load retry "
            f"{Path(name).name}` (or land a corrected copy)."
        )
    checks = Counter()
    failed = []
    for evaluation in result.get_asset_check_evaluations():
        status = "passed" if evaluation.passed else evaluation.severity.value.lower()
        checks[status] += 1
        if not evaluation.passed:
            failed.append(
                f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name} ({status})"
            )
    console.print("Checks: " + ", ".join(f"{n} {s}" for s, n in sorted(checks.items())))
    for line in failed[:20]:
        console.print(f"  [yellow]not passed[/yellow] {line}")
    steps_failed = [e.step_key for e in result.all_events if e.is_step_failure]
    status = (
        "[green]succeeded[/green]"
        if result.success
        else f"[red]failed[/red] in {', '.join(steps_failed)}"
    )
    console.print(f"Run {result.run_id[:8]} {status} in {seconds:.1f} s")
