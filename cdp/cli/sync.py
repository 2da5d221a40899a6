"""`cdp sync ...`: list, run, and inspect reverse-ETL syncs.

Exit codes: 0 all records delivered (or nothing to do), 1 some records rejected (see
`cdp sync errors NAME`), 2 invalid sync definition or unknown sync, 3 the run failed (destination
unreachable, credentials missing or refused, an answer the API does not document).

An invalid definition is reported (one line naming the file and the field) and skipped: the
other syncs list and run as usual."""

from __future__ import annotations

import json
import os

import typer
from rich.console import Console
from rich.markup import escape

from cdp.core.console import console, progress_bar, rows_table
from cdp.core.warehouse import connect_warehouse
from reverse_etl.config import load_syncs_reporting
from reverse_etl.engine import SCHEMA, check_against_warehouse, ensure_state, run_sync

sync_app = typer.Typer(
    help="Reverse ETL: send warehouse models to business tools.", no_args_is_help=True
)
out = Console()


def _syncs(report: bool = True):
    """The valid syncs; each invalid definition reported in one line and skipped."""
    syncs, problems = load_syncs_reporting()
    if report:
        for problem in problems:
            console.print(f"[yellow]skipped invalid sync definition: {escape(problem)}[/yellow]")
    return syncs, problems


@sync_app.command("list")
def list_syncs() -> None:
    """The syncs defined in reverse_etl/syncs/*.yml (exit 2 when one is invalid)."""
    syncs, problems = _syncs()
    rows = [
        (
            s.name,
            f"{s.source} -> {s.destination}:{s.object}",
            s.mode,
            f"{s.identifier.source} -> {s.identifier.destination}",
            s.filter or "",
            "none" if not s.gated else f"{s.purpose} by {s.channel} ({s.basis})",
            s.schedule or "",
        )
        for s in syncs.values()
    ]
    if not rows:
        raise typer.Exit(2 if problems else 0)
    out.print(
        rows_table(
            "Syncs",
            ["name", "route", "mode", "identifier", "filter", "purpose", "schedule"],
            rows,
            title_justify="left",
        )
    )
    if problems:
        raise typer.Exit(2)


@sync_app.command("validate")
def validate(
    offline: bool = typer.Option(
        False, "--offline", help="Check the definitions only, not the warehouse."
    ),
) -> None:
    """Check every sync definition, and against the warehouse its model, the columns it reads,
    its filter and the models that gate it. Exit 2 when anything is wrong."""
    syncs, problems = _syncs(report=False)
    lines = [f"invalid definition: {problem}" for problem in problems]
    if not offline:
        con = connect_warehouse()
        try:
            for sync in syncs.values():
                lines += [f"{sync.path}: {p}" for p in check_against_warehouse(con, sync)]
        finally:
            con.close()
    for line in lines:
        console.print(f"[red]{escape(line)}[/red]")
    checked = "definitions" if offline else "definitions and the warehouse"
    out.print(f"{len(syncs)} valid syncs, {len(lines)} problems ({checked} checked)")
    if lines:
        raise typer.Exit(2)


@sync_app.command("run")
def run(
    name: str = typer.Argument(..., help="Sync to run (see `cdp sync list`)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Count and sample the changes; send nothing."
    ),
    full_resync: bool = typer.Option(
        False,
        "--full-resync",
        help="Forget what the destination confirmed and send every row again.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Send what changed since the last confirmed run: added, changed, consent withdrawn (the
    destination is told), removed in mirror mode."""
    syncs, problems = _syncs(report=False)
    if name not in syncs:
        skipped = f"; skipped as invalid: {' | '.join(problems)}" if problems else ""
        known = ", ".join(syncs) or "none"
        console.print(f"[red]{escape(f'unknown sync {name!r}; known: {known}{skipped}')}[/red]")
        raise typer.Exit(2)
    con = connect_warehouse()
    try:
        with progress_bar(disable=as_json) as bar:
            task = bar.add_task(f"sync {name}", total=None)
            result = run_sync(
                con,
                syncs[name],
                dry_run=dry_run,
                full_resync=full_resync,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except Exception as exc:
        console.print(f"[red]{escape(f'sync {name} failed: {exc}')}[/red]")
        raise typer.Exit(3) from exc
    finally:
        con.close()
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        _print_result(result)
    raise typer.Exit(1 if result.failed else 0)


def _print_result(result) -> None:
    verb = "would send" if result.dry_run else "confirmed"
    out.print(
        f"[b]{result.sync_name}[/b] {result.status}: {verb} {result.added:,} added, "
        f"{result.changed:,} changed, {result.removed:,} removed, "
        f"{result.withdrawn:,} withdrawn, {result.merged:,} merged; "
        f"{result.unchanged:,} unchanged, {result.failed:,} rejected, "
        f"{result.invalid:,} invalid, {result.absent:,} not held (update mode); "
        f"{result.calls:,} calls, {result.retries:,} retries"
    )
    for change, sample in result.samples.items():
        if sample:
            columns = list(sample[0])
            out.print(
                rows_table(
                    f"sample of {change}",
                    columns,
                    [tuple(r.values()) for r in sample],
                    title_justify="left",
                )
            )


@sync_app.command("status")
def status(limit: int = typer.Option(20, help="How many recent runs.")) -> None:
    """Recent runs of every sync (sync_runs)."""
    con = connect_warehouse()
    try:
        ensure_state(con)
        rows = con.execute(
            f"""select sync_name, status, started_at, finished_at, added, changed,
            removed, withdrawn, failed, invalid, calls, retries from {SCHEMA}.sync_runs
            order by started_at desc limit ?""",
            [limit],
        ).fetchall()
    finally:
        con.close()
    out.print(
        rows_table(
            "Sync runs",
            [
                "sync",
                "status",
                "started",
                "finished",
                "added",
                "changed",
                "removed",
                "withdrawn",
                "failed",
                "invalid",
                "calls",
                "retries",
            ],
            rows,
            title_justify="left",
        )
    )


@sync_app.command("errors")
def errors(
    name: str = typer.Argument(..., help="Sync whose open errors to show."),
    limit: int = typer.Option(50, help="How many errors."),
) -> None:
    """Records a destination rejected (retried on the next run) or that were invalid."""
    con = connect_warehouse()
    try:
        ensure_state(con)
        rows = con.execute(
            f"""select record_key, error_kind, attempts, last_failed_at, message
            from {SCHEMA}.sync_errors where sync_name = ? order by last_failed_at desc
            limit ?""",
            [name, limit],
        ).fetchall()
    finally:
        con.close()
    if not rows:
        out.print(f"{name}: no open errors")
        return
    out.print(
        rows_table(
            f"Open errors of {name}",
            ["record", "kind", "attempts", "last failed", "message"],
            rows,
            title_justify="left",
        )
    )


@sync_app.command("demo")
def demo() -> None:
    """Run every sync against local emulators, twice (the second run must send nothing)."""
    from contextlib import ExitStack

    from cdp.core.config import PROJECT_ROOT
    from cdp.demo.destinations import received, start_emulators

    os.environ.setdefault("CDP_EXPORT_DIR", str(PROJECT_ROOT / "data" / "exports"))
    with ExitStack() as stack:
        emulators = start_emulators(stack)
        from orchestration.definitions import defs as code_location
        from orchestration.storage import recording_instance

        instance = stack.enter_context(recording_instance())
        job = code_location().resolve_job_def("syncs")
        # The emulators start empty: the first run re-sends everything, the second nothing.
        resync = {
            "ops": {
                f"syncs__{name}": {"config": {"full_resync": True}}
                for name in _syncs(report=False)[0]
            }
        }
        for attempt in ("first run (full resync)", "second run"):
            result = job.execute_in_process(
                instance=instance,
                raise_on_error=False,
                run_config={
                    "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                    **(resync if attempt.startswith("first") else {}),
                },
            )
            rows = []
            for event in result.get_asset_materialization_events():
                meta = {k: v.value for k, v in event.materialization.metadata.items()}
                rows.append(
                    (
                        event.asset_key.path[-1],
                        meta["status"],
                        meta["added"],
                        meta["changed"],
                        meta["removed"],
                        meta["failed"],
                        meta["calls"],
                    )
                )
            out.print(
                rows_table(
                    f"Syncs, {attempt}",
                    ["sync", "status", "added", "changed", "removed", "rejected", "calls"],
                    sorted(rows),
                    title_justify="left",
                )
            )
            if not result.success:
                console.print("[red]a sync failed; see above[/red]")
                raise typer.Exit(3)
        out.print(
            "Emulators now hold: "
            + ", ".join(f"{name} {n:,}" for name, n in received(emulators).items()),
            soft_wrap=True,
        )
