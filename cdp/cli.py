"""`cdp`: the command line of the customer data platform."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table as RichTable

app = typer.Typer(
    help="Warehouse-native customer data platform.", no_args_is_help=True, add_completion=False
)
console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Warehouse-native customer data platform: generate, load, model and sync customer data."""


@app.command()
def generate(
    people: int = typer.Option(10_000, "--people", "-n", min=1, help="How many people to invent."),
    seed: int = typer.Option(42, help="Random seed; the same seed gives byte-identical files."),
    out: Path = typer.Option(Path("data/demo"), help="Landing folder to write the exports to."),
    batch: str = typer.Option("initial", help="File-name suffix; a new batch adds new files."),
    first_person: int = typer.Option(1, help="Number of the first person (for later batches)."),
    as_of: dt.datetime = typer.Option(
        "2026-11-01T06:00:00",
        formats=["%Y-%m-%dT%H:%M:%S"],
        help="The export date; history reaches 3 years back.",
    ),
) -> None:
    """Write a messy demo data set from seven source systems plus ground_truth.csv."""
    from cdp.generate import Generator

    gen = Generator(people, seed=seed, out=out, as_of=as_of, batch=batch, first_person=first_person)
    started = time.perf_counter()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("people", total=people)
        stats = gen.run(progress=lambda n: bar.advance(task, n))
    seconds = time.perf_counter() - started
    summary = RichTable(title=f"Generated {people:,} people into {out}")
    summary.add_column("table")
    summary.add_column("rows", justify="right")
    for key, rows in stats.rows.items():
        summary.add_row(key, f"{rows:,}")
    summary.add_row("[b]total", f"[b]{stats.total_rows:,}")
    console.print(summary)
    console.print(
        f"{stats.total_rows / seconds:,.0f} rows/s in {seconds:.1f} s; "
        f"{stats.duplicates:,} exact duplicates and {stats.malformed:,} malformed rows "
        "injected"
    )


@app.command()
def run(
    job: str = typer.Option(
        "full_graph", help="Dagster job to run: full_graph or load_landed_files."
    ),
) -> None:
    """Materialize the Dagster asset graph in-process (raw loads, dbt build, all checks)."""
    import os

    os.environ.setdefault("CDP_REFRESH_MANIFEST", "1")
    from dagster import DagsterInstance

    from cdp.summary import print_run_summary
    from orchestration.definitions import defs
    from orchestration.resources import warehouse_path

    instance = (
        DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    )
    console.print(f"Running Dagster job [b]{job}[/b] into {warehouse_path()} ...")
    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )
    print_run_summary(console, result, warehouse_path(), time.perf_counter() - started)
    raise typer.Exit(0 if result.success else 1)
