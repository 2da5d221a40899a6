"""`cdp`: the command line of the customer data platform."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from cdp.cli.sync import sync_app
from cdp.core.config import landing_path, warehouse_path
from cdp.core.console import console, progress_bar, rows_table
from cdp.core.warehouse import WAREHOUSE_ERRORS, connect_warehouse, describe
from cdp.ingest.load import export_raw_parquet, retry_file

# Dagster's notes on its own beta and preview parameters are for this code's authors, not users.
warnings.filterwarnings("ignore", module=r"dagster\.")

# Exit codes of failures a command does not handle itself.
EXIT_FAILED, EXIT_BAD_PATH, EXIT_WAREHOUSE_BUSY = 1, 2, 75  # 75: sysexits' "try again later"


class _Cli(typer.Typer):
    """The `cdp` command: whatever a command does not handle itself ends in one line naming
    the command and the cause, never a traceback (CDP_DEBUG=1 shows it): exit 75 when another
    process holds the warehouse, 2 when a path or the warehouse cannot be opened, else 1."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except KeyboardInterrupt:
            console.print("[red]interrupted[/red]")
            raise SystemExit(130) from None
        except Exception as exc:
            if os.environ.get("CDP_DEBUG"):
                raise
            cause, code = _cause(exc)
            message = f"cdp {_command_of(sys.argv)}: {cause}"
            console.print(f"[red]{escape(message)}[/red]", soft_wrap=True)
            raise SystemExit(code) from None


def _command_of(argv: list[str]) -> str:
    words = [a for a in argv[1:] if not a.startswith("-")]
    return " ".join(words[:2]) or "(no command)"


def _cause(exc: BaseException) -> tuple[str, int]:
    """The first line of the error, with a hint where one is known, and the exit code."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if "lock" in lowered and ("conflicting" in lowered or "could not set" in lowered):
        hint = "another cdp run or the Dagster UI is writing the warehouse: wait for it or stop it"
        return f"{text} ({hint})", EXIT_WAREHOUSE_BUSY
    import duckdb

    if isinstance(exc, OSError | duckdb.IOException):  # a path, a file, a warehouse to open
        return text, EXIT_BAD_PATH
    return text, EXIT_FAILED


app = _Cli(
    help="Warehouse-native customer data platform.", no_args_is_help=True, add_completion=False
)


eval_app = typer.Typer(
    help="Measure quality against the generator's ground truth.", no_args_is_help=True
)
profile_app = typer.Typer(help="Look at customer profiles.", no_args_is_help=True)
privacy_app = typer.Typer(
    help="Privacy: erasure and access requests, personal-data columns.", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")
app.add_typer(profile_app, name="profile")
app.add_typer(sync_app, name="sync")
app.add_typer(privacy_app, name="privacy")
audiences_app = typer.Typer(
    help="Audiences declared in audiences/*.yml, compiled to dbt models.", no_args_is_help=True
)
app.add_typer(audiences_app, name="audiences")
sources_app = typer.Typer(
    help="Source systems declared in YAML (sources/*.yml, and CDP_SOURCES_DIR).",
    no_args_is_help=True,
)
app.add_typer(sources_app, name="sources")
identity_app = typer.Typer(
    help="Identity decisions: review pairs, manual merges and unmerges (kept with who, when "
    "and why; honoured by every later run).",
    no_args_is_help=True,
)
app.add_typer(identity_app, name="identity")
benchmark_app = typer.Typer(
    help="Public labelled data sets (FEBRL1-4, offline) through the whole pipeline, scored.",
    no_args_is_help=True,
)
app.add_typer(benchmark_app, name="benchmark")
leads_app = typer.Typer(
    help="The lead workflow: reps' tasks for routed leads, accepted or rejected (kept with who, "
    "when and why; the next run applies them).",
    no_args_is_help=True,
)
app.add_typer(leads_app, name="leads")
load_app = typer.Typer(help="Landing files: rejected files and their retry.", no_args_is_help=True)
app.add_typer(load_app, name="load")
serve_app = typer.Typer(help="Servers: the event collector, the profile API.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")


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
    """Write a messy demo data set from seven source systems plus ground_truth.csv and the true
    drivers of behaviour and outcomes (true_effects.json, true_behaviour.csv, true_leads.csv)."""
    from cdp.demo.generate import Generator

    gen = Generator(people, seed=seed, out=out, as_of=as_of, batch=batch, first_person=first_person)
    started = time.perf_counter()
    with progress_bar() as bar:
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
    emulate_apis: bool = typer.Option(
        False,
        "--emulate-apis",
        help="Serve the firmographics API from a local emulator for this run (the demo).",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show Dagster's log and dbt's line per model and test."
    ),
    full_build: bool = typer.Option(
        False,
        "--full-build",
        help="Build every dbt model and run every test, also those whose code and inputs are "
        "unchanged since their last build (the nightly schedule does this).",
    ),
) -> None:
    """Materialize the Dagster asset graph in-process (raw loads, dbt build, checks): a line
    per finished step, then a summary. dbt builds only what changed since its last build
    (new rows in a source, edited code) unless --full-build. dbt's own output goes to
    logs/cdp_run.log."""
    import uuid
    from contextlib import ExitStack

    os.environ.setdefault("CDP_REFRESH_MANIFEST", "1")
    if not sys.stdout.isatty():
        os.environ.setdefault("DBT_USE_COLORS", "false")  # no colour codes in files and pipes

    from cdp.cli.summary import print_run_summary
    from cdp.core.build_state import FULL_BUILD_TAG
    from orchestration.definitions import defs as code_location
    from orchestration.storage import recording_instance

    instance = recording_instance()
    console.print(f"Running Dagster job [b]{job}[/b] into {describe()} ...")
    started = time.perf_counter()
    run_id = str(uuid.uuid4())
    level = "INFO" if verbose else "WARNING"
    log_path = Path("logs") / "cdp_run.log"
    with ExitStack() as stack:
        if emulate_apis:
            from cdp.demo.destinations import start_enrichment_emulator

            start_enrichment_emulator(stack)
        if not verbose:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = stack.enter_context(log_path.open("w", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(log_file))
            stack.enter_context(_step_progress(instance, run_id, started))
        result = (
            code_location()
            .resolve_job_def(job)
            .execute_in_process(
                instance=instance,
                raise_on_error=False,
                run_id=run_id,
                run_config={"loggers": {"console": {"config": {"log_level": level}}}},
                tags={FULL_BUILD_TAG: "true"} if full_build else None,
            )
        )
    print_run_summary(console, result, time.perf_counter() - started)
    if not result.success and not verbose:
        console.print(f"dbt's output of this run: {log_path}; run with -v to see it all")
    raise typer.Exit(0 if result.success else 1)


@contextlib.contextmanager
def _step_progress(instance, run_id: str, started: float):
    """Print a line as each step of the run finishes (read from the run's event log)."""
    import threading

    from dagster import DagsterEventType

    kinds = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
    stop = threading.Event()
    cursor = None

    def report() -> None:
        nonlocal cursor
        # From the cursor on: reading the whole log twice a second cost 6.6 s of a demo run's CPU.
        found = instance.get_records_for_run(run_id, cursor=cursor, of_type=kinds)
        cursor = found.cursor if found.records else cursor
        for record in (r.event_log_entry for r in found.records):
            event = record.dagster_event
            mark = (
                "ok" if event.event_type == DagsterEventType.STEP_SUCCESS else "[red]FAILED[/red]"
            )
            elapsed = time.perf_counter() - started
            console.print(f"  {elapsed:6.1f} s  {mark}  {escape(event.step_key or '')}")

    def watch() -> None:
        while not stop.wait(1.0):  # each look costs a storage connection
            report()

    thread = threading.Thread(target=watch, name="cdp-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        report()


@app.command()
def ui(
    port: int = typer.Option(3000, help="Port of the Dagster UI."),
    grace: float = typer.Option(
        30.0, help="Seconds to let Dagster shut down after a stop signal before it is killed."
    ),
) -> None:
    """The Dagster UI and daemon (`dagster dev`) for this project. Ctrl-C or SIGTERM stops it
    and everything it started: runs in flight, sensors, the code server (killed after --grace
    seconds if they do not stop). Exit 0 when stopped by a signal."""
    import signal
    import subprocess

    from orchestration.storage import local_instance_config

    def child_setup() -> None:
        # Started from a script or with `&`, SIGINT is ignored and Dagster would not hear it.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    dagster = str(Path(sys.executable).parent / "dagster")
    command = [dagster, "dev", "-m", "orchestration.definitions", "--port", str(port)]
    home = os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve()))
    local_instance_config(home)
    process = subprocess.Popen(command, start_new_session=True, preexec_fn=child_setup)
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        console.print(f"stopping the Dagster UI (signal {signal.Signals(signum).name}) ...")
        process.send_signal(signal.SIGINT)  # Dagster's own clean shutdown

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        try:
            code = process.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            if stopping and grace is not None:
                grace -= 1.0
                if grace <= 0:
                    console.print("[yellow]Dagster did not stop in time: killed[/yellow]")
                    os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):  # whatever it started and left behind
        os.killpg(process.pid, signal.SIGKILL)
    raise typer.Exit(0 if stopping else code)


@app.command()
def prepare() -> None:
    """Parse the dbt project for the warehouse target (CDP_TARGET) into target/<target>/, when
    anything dbt reads changed since the last parse: what `cdp run` and `dagster dev` would do
    first. A deployment runs it once when it builds, so that runs start at once; `make demo`
    runs it while it generates the data. Exit 0 when the manifest is ready, 1 when dbt cannot
    parse the project."""
    os.environ["CDP_REFRESH_MANIFEST"] = "1"
    from dagster_dbt.errors import DagsterDbtCliRuntimeError

    from orchestration.project import dbt_project, prepared_dbt_project

    manifest = dbt_project().manifest_path
    before = manifest.stat().st_mtime_ns if manifest.exists() else None
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # dbt's own lines, apart from the result
            prepared_dbt_project()
    except DagsterDbtCliRuntimeError:
        console.print("[red]cdp prepare: dbt could not parse the project: its error is above[/red]")
        raise typer.Exit(1) from None
    state = "unchanged" if manifest.stat().st_mtime_ns == before else "parsed"
    console.print(f"dbt manifest {state}: {manifest} ({time.perf_counter() - started:.1f} s)")


@sources_app.command("check")
def sources_check(
    file: Path = typer.Argument(..., help="The source YAML to check."),
    sample: Path = typer.Option(
        None, "--sample", help="A file to read with it (default: the first its path finds)."
    ),
) -> None:
    """Validate a source declaration and show what a sample file would load: rows, values
    that do not parse, quarantined rows, missing or undeclared columns, roles."""
    import json

    from cdp.ingest.declared import check
    from cdp.ingest.sources import SourceError

    try:
        report = check(file, sample)
    except (SourceError, FileNotFoundError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    console.print(f"[b]{report['system']}[/b]: declaration valid")
    failed = False
    for name, entry in report["tables"].items():
        console.print(f"[b]{name}[/b] ({entry['entity']}): {', '.join(entry['files']) or '-'}")
        if "note" in entry:
            console.print(f"  {entry['note']}")
            continue
        if entry["rejected"]:
            failed = True
        for key in ("rows_read", "rows_loaded", "rows_quarantined", "values_invalid"):
            console.print(f"  {key.replace('_', ' ')}: {entry[key]:,}")
        for column, count in entry["invalid_by_column"].items():
            console.print(f"  {column}: {count:,} value(s) do not parse (null, kept in raw)")
        for line, reason in entry["quarantine_examples"]:
            console.print(f"  line {line}: {reason}")
        for problem in entry["problems"]:
            console.print(f"  [yellow]{problem}[/yellow]")
        console.print("  roles: " + json.dumps(entry["roles"]))
        for row in entry["sample_rows"]:
            console.print("  " + json.dumps(row, default=str, ensure_ascii=False))
    raise typer.Exit(1 if failed else 0)


@sources_app.command("list")
def sources_list() -> None:
    """The declared systems and tables, and declarations that cannot be used."""
    from cdp.ingest.sources import read_sources, source_folders

    found, problems = read_sources()
    rows = [
        (
            spec.system,
            table.name,
            spec.staging,
            table.entity,
            table.format,
            table.path or "(default)",
            spec.path.name,
        )
        for spec in found
        for table in spec.tables
    ]
    console.print(
        rows_table(
            "Sources declared in " + ", ".join(str(f) for f in source_folders()),
            ["system", "table", "staging", "entity", "format", "path", "file"],
            rows,
        )
    )
    for problem in problems:
        console.print(f"[red]left out: {escape(problem)}[/red]")
    raise typer.Exit(1 if problems else 0)


REASON = typer.Option(..., "--reason", "-r", help="Why (kept with the decision).")
BY = typer.Option(None, "--by", help="Who decides (default: CDP_USER or the login name).")


def _decide(action: str, a: str, b: str | None, reason: str, by: str | None) -> None:
    from cdp.identity.decisions import DecisionError, decide

    with connect_warehouse() as con:
        try:
            decision_id = decide(con, action, a, b, reason=reason, decided_by=by)
        except DecisionError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    what = f"{a} and {b}" if b else a
    console.print(
        f"decision {decision_id}: {action.replace('_', ' ')} {what}; the next `cdp run` applies it"
    )


@leads_app.command("tasks")
def leads_tasks(
    owner: str = typer.Option(None, "--owner", help="Only this rep's tasks."),
    status: str = typer.Option(
        None, "--status", help="open, accepted, rejected, breached or worked_in_crm."
    ),
    limit: int = typer.Option(30, help="How many tasks to list."),
) -> None:
    """Lead tasks, newest first: the rep, the grade, the score (as routed and aged), the
    status and the SLA deadline."""
    from cdp.intelligence.lead_workflow import LeadDecisionError, tasks

    with connect_warehouse(read_only=True) as con:
        try:
            rows = tasks(con, owner=owner, status=status)
        except LeadDecisionError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    columns = ["lead", "rep", "grade", "score", "aged", "status", "due", "decided by"]
    shown = [
        (
            t["contact_id"],
            t["owner_name"],
            t["grade"],
            t["lead_score"],
            t["aged_lead_score"],
            t["status"],
            f"{t['due_at']:%Y-%m-%d %H:%M}",
            t["decided_by"] or "",
        )
        for t in rows[:limit]
    ]
    console.print(rows_table(f"Lead tasks ({len(rows):,})", columns, shown))


def _decide_lead(contact_id: str, decision: str, reason: str, by: str | None) -> None:
    from cdp.intelligence.lead_workflow import LeadDecisionError, decide

    with connect_warehouse() as con:
        try:
            decision_id, task = decide(con, contact_id, decision, reason=reason, decided_by=by)
        except LeadDecisionError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    console.print(
        f"decision {decision_id}: {contact_id} {decision} (task of {task['owner_name']}, due "
        f"{task['due_at']:%Y-%m-%d %H:%M} UTC); the next `cdp run` applies it"
    )


@leads_app.command("accept")
def leads_accept(
    contact_id: str = typer.Argument(..., help="The lead's CRM contact id, e.g. C-00000042."),
    reason: str = typer.Option("", "--reason", "-r", help="A note (optional)."),
    by: str = BY,
) -> None:
    """Accept a lead routed to you: it becomes a sales accepted lead (SAL)."""
    _decide_lead(contact_id, "accepted", reason, by)


@leads_app.command("reject")
def leads_reject(
    contact_id: str = typer.Argument(..., help="The lead's CRM contact id."),
    reason: str = REASON,
    by: str = BY,
) -> None:
    """Reject a lead routed to you, saying why (marketing reads it)."""
    _decide_lead(contact_id, "rejected", reason, by)


@identity_app.command("review")
def identity_review(
    action: str = typer.Argument("list", help="list, accept or reject."),
    pair_id: str = typer.Argument(None, help="The review pair id (for accept or reject)."),
    reason: str = typer.Option("", "--reason", "-r", help="Why (required to decide)."),
    by: str = BY,
    limit: int = typer.Option(20, help="How many pairs to list."),
) -> None:
    """List probable matches that were not linked, or accept (merge) / reject (keep apart)
    one by its id."""
    from cdp.identity.decisions import DecisionError, review_pair, review_pairs

    if action not in ("list", "accept", "reject"):
        console.print("[red]action must be list, accept or reject[/red]")
        raise typer.Exit(2)
    with connect_warehouse() as con:
        try:
            if action == "list":
                rows = review_pairs(con, limit)
            else:
                if not pair_id:
                    raise DecisionError(f"{action} needs a pair id (see `cdp identity review`)")
                a, b = review_pair(con, pair_id)
        except DecisionError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    if action == "list":
        columns = ["pair", "record", "record", "p", "agreed", "disagreed", "why"]
        console.print(rows_table("Identity review pairs", columns, rows))
        return
    _decide("merge" if action == "accept" else "keep_apart", a, b, reason, by)


@identity_app.command("merge")
def identity_merge(
    record_a: str = typer.Argument(..., help="A record key, e.g. crm:C-00001."),
    record_b: str = typer.Argument(..., help="Another record key."),
    reason: str = REASON,
    by: str = BY,
) -> None:
    """Link two records (and so their profiles) by hand."""
    _decide("merge", record_a, record_b, reason, by)


@identity_app.command("keep-apart")
def identity_keep_apart(
    record_a: str = typer.Argument(..., help="A record key."),
    record_b: str = typer.Argument(..., help="Another record key."),
    reason: str = REASON,
    by: str = BY,
) -> None:
    """Never link these two records directly (undo a wrong match)."""
    _decide("keep_apart", record_a, record_b, reason, by)


@identity_app.command("unmerge")
def identity_unmerge(
    record: str = typer.Argument(..., help="The record to take out of its profile."),
    reason: str = REASON,
    by: str = BY,
) -> None:
    """Take a record out of its profile: none of its automatic links count any more."""
    _decide("detach", record, None, reason, by)


@identity_app.command("decisions")
def identity_decisions_list() -> None:
    """Every identity decision, oldest first."""
    from cdp.identity.decisions import decisions

    with connect_warehouse() as con:
        rows = decisions(con)
    columns = ["id", "action", "record", "record", "by", "at", "reason"]
    console.print(rows_table("Identity decisions", columns, rows))


@benchmark_app.command("import")
def benchmark_import(
    name: str = typer.Argument(..., help="febrl1, febrl2, febrl3, febrl4 or us_households."),
    out: Path = typer.Option(..., "--out", help="Folder for sources/, landing/, warehouse."),
) -> None:
    """Write a data set as a new user would bring it: source YAML, files, ground truth."""
    from cdp.identity.benchmarks import DATASETS, environment, write_dataset

    if name not in DATASETS:
        console.print(f"[red]unknown data set {name!r}; known: {', '.join(DATASETS)}[/red]")
        raise typer.Exit(2)
    counts = write_dataset(name, out)
    console.print(f"{name}: {counts['records']:,} records of {counts['people']:,} people in {out}")
    console.print("Run it with: " + " ".join(f"{k}={v}" for k, v in environment(out).items()))


@benchmark_app.command("run")
def benchmark_run(
    name: str = typer.Argument(..., help="febrl1, febrl2, febrl3, febrl4 or us_households."),
    out: Path = typer.Option(None, "--out", help="Working folder (default: a temporary one)."),
    json_out: Path = typer.Option(None, "--json", help="Write the scores to this JSON file."),
) -> None:
    """Import a data set, run the whole pipeline on it (its own warehouse) and score the
    profiles beside a plain Splink clustering of the same records."""
    import json
    import tempfile

    from cdp.identity.benchmarks import (
        DATASETS,
        environment,
        run_pipeline,
        score,
        write_dataset,
    )

    if name not in DATASETS:
        console.print(f"[red]unknown data set {name!r}; known: {', '.join(DATASETS)}[/red]")
        raise typer.Exit(2)
    out = out or Path(tempfile.mkdtemp(prefix=f"cdp-{name}-"))
    write_dataset(name, out)
    started = time.perf_counter()
    with console.status(f"{name}: cdp run (log: {out / 'run.log'}) ..."):
        code = run_pipeline(out)
    seconds = time.perf_counter() - started
    if code != 0:
        console.print(f"[red]{name}: the pipeline exited {code}; see {out / 'run.log'}[/red]")
        raise typer.Exit(1)
    scoring = f"{name}: scoring, and a plain Splink clustering beside it ..."
    benchmark_warehouse = environment(out)["CDP_WAREHOUSE"]
    with console.status(scoring), connect_warehouse(True, benchmark_warehouse) as con:
        scores = score(con, out)
    scores.update(dataset=name, pipeline_seconds=round(seconds, 1))
    rows = [
        (
            who,
            f"{s['precision']:.4f}",
            f"{s['recall']:.4f}",
            f"{s['f1']:.4f}",
            f"{s['bcubed_f1']:.4f}",
        )
        for who, s in (("cdp", scores["cdp"]), ("plain Splink", scores["plain_splink"]))
    ]
    console.print(
        rows_table(
            f"{name}: {scores['cdp']['records_scored']:,} records, pipeline {seconds:.0f} s",
            ["resolver", "precision", "recall", "F1", "B-cubed F1"],
            rows,
        )
    )
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(scores, indent=2), encoding="utf-8")


@load_app.command("retry")
def load_retry(
    files: list[str] = typer.Argument(..., help="Rejected files (path or name) to read again."),
) -> None:
    """Read a rejected file again on the next run (after fixing it in place)."""
    with connect_warehouse() as con:
        for name in files:
            forgotten = retry_file(con, name)
            if forgotten:
                console.print(f"{name}: will be read again by the next run")
            else:
                console.print(f"[red]{name}: no rejected file of that name[/red]")
                raise typer.Exit(1)


@load_app.command("rejected")
def load_rejected() -> None:
    """Files the loader rejected, with the reason."""
    from cdp.ingest.load import rejected_files

    with connect_warehouse() as con:
        rows = rejected_files(con)
    console.print(rows_table("Rejected landing files", ["table", "file", "reason", "at"], rows))


@app.command("export-raw")
def export_raw(
    out: Path = typer.Option(..., "--out", help="Folder for <table>/data.parquet."),
) -> None:
    """Write the raw layer of the DuckDB warehouse as Parquet, for Spark or Trino; prints the
    `dbt run-operation register_raw_parquet` command that registers it on Spark."""
    import duckdb

    try:
        con = duckdb.connect(warehouse_path(), read_only=True)
    except duckdb.Error as exc:
        console.print(f"[red]cannot open {warehouse_path()}: {exc}[/red]")
        raise typer.Exit(2) from exc
    try:
        with console.status(f"writing Parquet to {out} ..."):
            written = export_raw_parquet(con, out)
    finally:
        con.close()
    if not written:
        console.print("[red]no raw tables loaded yet: run `cdp run` first[/red]")
        raise typer.Exit(1)
    rows = [(table, f"{count:,}") for table, count in written.items()]
    console.print(rows_table(f"Raw tables in {out}", ["table", "rows"], rows))
    arguments = json.dumps({"folder": str(out.resolve()), "tables": sorted(written)})
    console.print("register them on Spark with:", style="bold")
    console.print(
        escape(f"dbt run-operation register_raw_parquet --target spark --args '{arguments}'"),
        soft_wrap=True,
    )


def _against_truth(score, what: str):
    """`score(warehouse, landing folder)`; exit 2 in one line without truth files, enough
    data or a built warehouse."""
    import duckdb

    from cdp.core.truth import MissingTruth
    from cdp.intelligence.tables import NotEnoughData

    try:
        with connect_warehouse(read_only=True) as con:
            return score(con, landing_path())
    except (MissingTruth, NotEnoughData) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except duckdb.Error as exc:
        console.print(
            f"[red]{warehouse_path()}: no {what} to score ({str(exc).splitlines()[0]}); "
            "run `cdp run` first[/red]"
        )
        raise typer.Exit(2) from None


@eval_app.command("identity")
def eval_identity(
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
    min_f1: float = typer.Option(0.0, help="Exit 1 when pairwise F1 (all records) is below."),
    min_resolvable_f1: float = typer.Option(
        0.0, help="Exit 1 when pairwise F1 over the resolvable records is below."
    ),
) -> None:
    """Precision, recall and F1 (pairwise and B-cubed) of the profiles against
    ground_truth*.csv in the landing folder: every record with a known truth, and beside it
    the records that carry something to resolve them by. Over-merged and split examples."""
    import json

    from cdp.identity.evaluation import evaluate

    score = _against_truth(evaluate, "profiles")
    if as_json:
        typer.echo(json.dumps(score.as_dict(), indent=2))
    else:
        table = RichTable(title="Identity resolution vs. ground truth")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for key, value in score.figures().items():
            table.add_row(
                key.replace("_", " "), f"{value:,}" if isinstance(value, int) else f"{value:.4f}"
            )
        Console().print(table)
        for example in score.over_merged_examples[:3]:
            console.print(f"over-merged: {example}")
        for example in score.split_examples[:3]:
            console.print(f"split: {example}")
    passed = score.f1 >= min_f1 and score.resolvable_f1 >= min_resolvable_f1
    raise typer.Exit(0 if passed else 1)


@eval_app.command("predictions")
def eval_predictions(
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """The churn model's holdout AUC beside what the generator's truth allows (true_behaviour.csv,
    true_effects.json in the landing folder), on the holdout of the latest training run: the
    ceiling ranks customers by their true parameters' churn chance, the reference by the
    generator's own forecast from each customer's purchase history; recency beside them."""
    import json

    from cdp.intelligence.evaluation import churn_ceiling

    ceiling = _against_truth(churn_ceiling, "customers")
    if as_json:
        typer.echo(json.dumps(ceiling.as_dict(), indent=2))
        return
    truth = (
        f"the generator's own forecast from the purchase history {ceiling.process_auc} "
        f"(the reference), the true parameters {ceiling.oracle_auc} (the ceiling) on "
        f"{ceiling.with_truth:,} holdout customers"
    )
    console.print(
        f"Churn vs. truth: served model AUC {ceiling.served_auc} "
        f"(± {ceiling.served_auc_standard_error}), recency {ceiling.recency_auc}, {truth}; the "
        f"model reaches {ceiling.served_share_of_oracle:.0%} of the ceiling's lift over chance"
        if ceiling.served_auc is not None
        else f"Churn vs. truth: no model trained yet; {truth}"
    )


@profile_app.command("show")
def profile_show(
    who: str = typer.Argument(..., help="An email address or a profile id."),
    as_json: bool = typer.Option(False, "--json", help="Print the profile as JSON."),
    events: int = typer.Option(15, help="How many recent events to show."),
) -> None:
    """The 360-degree view of one person: golden record with provenance, identifiers,
    source records, recent events, merges and changes."""
    import json

    from cdp.identity.profile import ProfileNotFound, profile_360

    try:
        with connect_warehouse(read_only=True) as con:
            view = profile_360(con, who, events=events)
    except ProfileNotFound as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(view, indent=2, default=str))
        return
    out = Console()
    customer = view["customer"]
    out.print(
        f"[b]{customer['full_name'] or '(anonymous)'}[/b]  {view['profile_id']}  "
        f"sources: {customer['sources']}"
    )
    for title, rows in (
        ("Golden record (with provenance)", view["attributes"]),
        ("Identifiers", view["identifiers"]),
        ("Source records", view["records"]),
        ("Recent events", view["recent_events"]),
        ("Merges and splits", view["merges"]),
        ("Changes", view["changes"]),
    ):
        if not rows:
            out.print(f"[dim]{title}: none[/dim]")
            continue
        values = [row.values() for row in rows]
        out.print(rows_table(title, rows[0], values, title_justify="left"))


@privacy_app.command("export")
def privacy_export(
    who: str = typer.Argument(..., help="An email address or a profile id."),
    out: Path | None = typer.Option(None, "--out", help="Write the JSON here, not to stdout."),
) -> None:
    """Access request: every identifier, attribute with provenance, event, consent, and what was
    synced where and when, as one JSON document."""
    import json

    from cdp.identity.profile import ProfileNotFound
    from cdp.privacy.access import access_export

    try:
        with connect_warehouse(read_only=True) as con:
            document = access_export(con, who)
    except ProfileNotFound as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    text = json.dumps(document, indent=2, default=str)
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(
            f"wrote {out} ({len(document['source_records'])} records, "
            f"{len(document['events'])} events, {len(document['deliveries'])} "
            "deliveries)"
        )
    else:
        typer.echo(text)


@privacy_app.command("erase")
def privacy_erase(
    email: str | None = typer.Option(None, "--email", help="The person's email address."),
    profile_id: str | None = typer.Option(None, "--profile-id", help="Or their profile id."),
    requested_by: str = typer.Option(
        None, "--requested-by", help="Who files the request (default: $USER)."
    ),
    reason: str = typer.Option("data subject request (GDPR Art. 17)", help="Why."),
    run: bool = typer.Option(
        True, "--run/--no-run", help="Process now, or leave it to the Dagster sensor."
    ),
) -> None:
    """Right to erasure: forget a person in raw, staging, marts, snapshots, sync state and every
    destination, and keep them from coming back with the next load. Exit 0 when verified,
    1 when something failed (the message says where), 2 on bad input."""
    import getpass

    from cdp.privacy import erasure

    try:
        erasure.normalized_subject(email, profile_id)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    con = connect_warehouse()
    try:
        request_id = erasure.request_erasure(
            con,
            email=email,
            profile_id=profile_id,
            requested_by=requested_by or getpass.getuser(),
            reason=reason,
        )
    finally:
        con.close()
    console.print(f"erasure request [b]{request_id}[/b] recorded")
    if not run:
        return
    from orchestration.definitions import defs as code_location
    from orchestration.storage import recording_instance

    instance = recording_instance()
    with console.status("erasing: destinations, warehouse, dbt rebuild, verification ..."):
        result = (
            code_location()
            .resolve_job_def("privacy_erasure")
            .execute_in_process(instance=instance, raise_on_error=False)
        )
    _print_erasure_requests([request_id])
    raise typer.Exit(0 if result.success else 1)


@privacy_app.command("requests")
def privacy_requests() -> None:
    """Erasure requests: status, counts, who asked and when (no identifiers: hashes only)."""
    _print_erasure_requests(None)


def _print_erasure_requests(request_ids: list[str] | None) -> None:
    from cdp.core.sql import table_exists
    from cdp.privacy import erasure

    con = connect_warehouse(read_only=True)
    try:
        if not table_exists(con, "privacy", "erasure_requests"):
            console.print("no erasure requests")
            return
        where = "where request_id in (select unnest($ids))" if request_ids else ""
        rows = con.execute(
            f"""select request_id, status, requested_by, requested_at, rows_deleted,
                rows_pseudonymized, destination_deletes, remaining_rows, message
            from {erasure.REQUESTS} {where} order by requested_at""",
            {"ids": request_ids} if request_ids else {},
        ).fetchall()
        actions = con.execute(
            f"""select request_id, system, action, rows, ok, message from {erasure.ACTIONS}
            {where} order by happened_at""",
            {"ids": request_ids} if request_ids else {},
        ).fetchall()
    finally:
        con.close()
    columns = ("request", "status", "by", "at", "deleted", "pseudonymized", "destinations", "left",
               "message")  # fmt: skip
    console.print(rows_table("Erasure requests", columns, rows))
    if request_ids and actions:
        columns = ("request", "system", "action", "rows", "ok", "message")
        console.print(rows_table("What was done", columns, actions))


@privacy_app.command("pii-columns")
def privacy_pii_columns(
    markdown: bool = typer.Option(False, "--markdown", help="Print docs/pii_columns.md."),
) -> None:
    """Every column tagged as personal data (meta: {pii: true}) in the dbt models."""
    import json

    from cdp.privacy.access import pii_columns, pii_columns_markdown
    from orchestration.project import prepared_dbt_project

    manifest_path = prepared_dbt_project().manifest_path
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if markdown:
        typer.echo(pii_columns_markdown(manifest), nl=False)
        return
    rows = [(c["relation"], c["column"], c["description"]) for c in pii_columns(manifest)]
    console.print(rows_table("Personal data columns", ("model", "column", "description"), rows))


@audiences_app.command("compile")
def audiences_compile(
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 when compiled models are out of date."
    ),
) -> None:
    """Compile audiences/*.yml to dbt models in models/marts/audiences/."""
    from cdp.intelligence.audiences import AudienceError, compile_audiences

    try:
        changed = compile_audiences(check=check)
    except AudienceError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    for path in changed:
        console.print(("out of date: " if check else "wrote ") + str(path))
    if check and changed:
        console.print("run `cdp audiences compile` and commit the result")
        raise typer.Exit(1)
    console.print(f"{len(changed)} file(s) {'out of date' if check else 'written'}")


@audiences_app.command("list")
def audiences_list() -> None:
    """Every audience with its definition file and, once built, its size."""
    from cdp.intelligence.audiences import load_audiences
    from cdp.intelligence.insights import audience_sizes

    sizes = {}
    try:
        with connect_warehouse(read_only=True) as con:
            sizes = {row["audience"]: row for row in audience_sizes(con)}
    except WAREHOUSE_ERRORS:
        pass  # not built yet
    rows = [
        (
            a.name,
            a.description,
            sizes.get(a.name, {}).get("member_count"),
            a.consent,
            str(a.path.name),
        )
        for a in load_audiences().values()
    ]
    console.print(
        rows_table("Audiences", ["name", "description", "members", "consent", "file"], rows)
    )


@app.command()
def insights(
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Headline figures: audience sizes, funnel, attributed revenue, campaign returns, routing,
    preferred channels and product recommendations, model quality, the lead model against the
    rule score."""
    import json

    from cdp.intelligence.insights import ATTRIBUTION_MODELS, collect
    from cdp.intelligence.predict import CHURN_MODELS, CLV_MODELS

    try:
        with connect_warehouse(read_only=True) as con:
            figures = collect(con)
    except WAREHOUSE_ERRORS as exc:
        console.print(f"[red]no built warehouse at {describe()}: {exc}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(figures, indent=2, default=str))
        return
    console.print(
        rows_table(
            "Audiences",
            ["audience", "members", "entered", "left"],
            [
                (a["audience"], f"{a['member_count']:,}", a["entered_count"], a["exited_count"])
                for a in figures["audiences"]
            ],
        )
    )
    console.print(
        rows_table(
            "Funnel (all sources)",
            ["step", "entered", "converted", "rate", "median days"],
            [
                (
                    f"{f['from_stage']} -> {f['to_stage']}",
                    f"{f['leads_entered']:,}",
                    f"{f['leads_converted']:,}",
                    f"{f['conversion_rate']:.1%}",
                    f["median_days_to_convert"],
                )
                for f in figures["funnel"]
            ],
        )
    )
    console.print(
        rows_table(
            "Top channels by attributed purchase revenue (EUR)",
            ["channel", *ATTRIBUTION_MODELS],
            [
                (c["channel"], *(f"{c[m]:,.0f}" for m in ATTRIBUTION_MODELS))
                for c in figures["top_channels_by_attributed_revenue"]
            ],
        )
    )
    console.print(
        rows_table(
            "Best campaign returns (time decay)",
            ["channel", "campaign", "spend EUR", "revenue EUR", "ROAS", "ROI"],
            [
                (
                    c["channel"],
                    c["campaign"],
                    f"{c['spend_eur']:,.0f}",
                    f"{c['revenue_eur']:,.0f}",
                    f"{c['roas']:.2f}",
                    f"{c['roi']:.1%}",
                )
                for c in figures["top_campaigns_by_return"]
            ],
        )
    )
    console.print(
        rows_table(
            "Lead routing",
            ["rule", "leads", "reps"],
            [(r["routing_rule"], r["leads"], r["reps"]) for r in figures["lead_routing"]],
        )
    )
    console.print(
        rows_table(
            "Lead tasks",
            ["status", "tasks", "decided within SLA", "median hours to decide"],
            [
                (t["status"], t["tasks"], t["within_sla"], t["median_hours_to_decision"] or "")
                for t in figures["lead_tasks"]
            ],
        )
    )
    chosen = figures["preferences"]
    console.print(
        rows_table(
            "Preferred channel (last year's interactions)",
            ["channel", "profiles"],
            [(c["channel"], f"{c['profiles']:,}") for c in chosen["preferred_channels"]],
        )
    )
    offered = ", ".join(f"{r['basis']} {r['profiles']:,}" for r in chosen["recommendations"])
    console.print(f"Product recommendations: {offered or 'none'}")
    metrics = figures["model_metrics"]
    if metrics:

        def served(kind: str, names: tuple[str, ...], figure: str, digits: int) -> str:
            """Which model a run served for churn or CLV, and how the others did (runs from
            before the models competed served the linear one and name no others)."""
            chosen = next((n for n in names if metrics.get(f"{kind}_served_{n}")), "linear")
            others = ", ".join(
                f"{n} {metrics[figure.format(n)]:,.{digits}f}"
                for n in names
                if n != chosen and figure.format(n) in metrics
            )
            return f"{chosen} served; {others}" if others else chosen

        churn = served("churn", CHURN_MODELS, "churn_auc_{}", 3)
        clv = served("clv", CLV_MODELS, "clv_mae_{}_eur", 0)
        console.print(
            f"Churn model: AUC {metrics['churn_auc']:.3f} on the holdout ({churn}; "
            f"ranking by recency: {metrics['churn_auc_recency_baseline']:.3f}); "
            f"CLV model: MAE {metrics['clv_mae_eur']:,.0f} EUR ({clv}; "
            f"everyone the average: {metrics['clv_mae_mean_baseline_eur']:,.0f} EUR)"
        )
    leads = figures["lead_model"]
    if leads:
        scored = leads["metrics"]
        holdout = scored.get("holdout_leads")  # runs before it was kept lack it
        console.print(
            f"Lead model: AUC {scored['model_auc_sal']:.3f} for sales acceptance on the "
            f"{f'{holdout:,.0f} ' if holdout else ''}newest decided leads (rule score: "
            f"{scored['rule_auc_sal']:.3f})"
            + (
                f"; for won deals {scored['model_auc_won']:.3f} (rule score "
                f"{scored['rule_auc_won']:.3f})"
                if "model_auc_won" in scored
                else ""
            )
        )

        def lift(value) -> str:
            return "" if value is None else f"{value:.2f}"

        console.print(
            rows_table(
                "Lead score lift by decile (1 = top tenth; SAL rate over the base rate)",
                ["decile", "model lift", "model SAL rate", "rule lift", "rule SAL rate"],
                [
                    (
                        d["decile"],
                        lift(d["model_lift"]),
                        "" if d["model_rate"] is None else f"{d['model_rate']:.1%}",
                        lift(d["rule_lift"]),
                        "" if d["rule_rate"] is None else f"{d['rule_rate']:.1%}",
                    )
                    for d in leads["lift_by_decile"]
                ],
            )
        )
        console.print(
            rows_table(
                "Lead rules: configured points and points refitted on outcomes "
                "(10 points double the odds)",
                ["rule", "configured", "refitted", "leads", "SAL rate when fired"],
                [
                    (
                        r["rule_name"],
                        r["configured_points"],
                        r["calibrated_points"],
                        r["fired_leads"],
                        f"{r['conversion_rate_when_fired']:.1%}",
                    )
                    for r in leads["rule_points"]
                ],
            )
        )


@serve_app.command("collect")
def serve_collect(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8787, help="Port to listen on."),
    spool: Path = typer.Option(
        None, help="Folder of the open segments (default: <landing>/.collector)."
    ),
    segment_seconds: float = typer.Option(
        5.0, help="Close and land a segment at this age (seconds)."
    ),
    live: bool = typer.Option(
        True,
        help="Fold accepted events into the profile store (CDP_PROFILE_STORE) at once, so the "
        "profile API shows them before the batch build.",
    ),
) -> None:
    """Collect events over Segment's HTTP Tracking API (POST /v1/track, /v1/identify, /v1/page,
    /v1/screen, /v1/group, /v1/alias, /v1/batch) into the web events landing folder. Write keys
    come from CDP_COLLECTOR_WRITE_KEYS (comma-separated); an event is answered 200 only once it
    is fsynced."""
    import uvicorn

    from cdp.realtime.collector.app import (
        WRITE_KEYS_ENV,
        CollectorSettings,
        create_app,
        web_events_landing,
        write_keys_from_env,
    )
    from cdp.realtime.store import STORE_ENV, describe_store

    keys = write_keys_from_env()
    if not keys:
        console.print(f"[red]set {WRITE_KEYS_ENV} to the write key(s) the collector accepts[/]")
        raise typer.Exit(2)
    landing = Path(landing_path())
    settings = CollectorSettings(
        spool=spool or landing / ".collector",
        landing=web_events_landing(landing),
        write_keys=keys,
        segment_seconds=segment_seconds,
        profile_store=os.environ.get(STORE_ENV, "") if live else None,
    )
    console.print(
        f"collecting on http://{host}:{port}/v1/ into {settings.landing} ({len(keys)} write key(s))"
        + (f"; live into {describe_store()}" if live else "")
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@serve_app.command("api")
def serve_api(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8788, help="Port to listen on."),
    workers: int = typer.Option(1, help="Server processes (one per core serves the most)."),
) -> None:
    """Serve profiles by any identifier (GET /v1/profiles/{kind}:{value}, /traits, /audiences)
    from the profile store the `profile_api` sync fills: Redis when CDP_PROFILE_STORE is a
    redis:// URL, else the embedded file. Bearer tokens and scopes come from CDP_API_TOKENS
    (`token=profiles:read profiles:pii;...`). OpenAPI docs at /docs; the 360° customer page at
    /customers (sign in with a token)."""
    import uvicorn

    from cdp.realtime.store import describe_store
    from cdp.serving.api import TOKENS_ENV, create_app, tokens_from_env

    if not tokens_from_env():
        console.print(f"[red]set {TOKENS_ENV} to the API's bearer tokens and their scopes[/]")
        raise typer.Exit(2)
    console.print(
        f"serving profiles from {describe_store()} on http://{host}:{port}/v1/profiles "
        f"and the customer page on http://{host}:{port}/customers"
    )
    if workers > 1:  # each process builds its own app from the environment
        uvicorn.run(
            "cdp.serving.api:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
    else:
        uvicorn.run(create_app(), host=host, port=port, log_level="warning")
