"""Benchmarks (not part of `make test`): the whole path on DuckDB at a given size.

    make bench                  # 100k source records (about 4,800 people)
    SIZE=1m make bench          # 1M source records
    SIZE=10m make bench         # 10M source records

Stages: generate, raw load, reload (no-op), full dbt build (staging -> golden records, with
tests), the build after 1% new people, the build with nothing new, identity
evaluation, the identity models alone beside a plain Splink dedupe of the same records (time and
F1), the build after new rows in one source (support tickets), reverse-ETL diff (dry run) of
every profile, sync of every profile to the HubSpot emulator, unchanged re-sync. dbt builds
what changed since its last build, as the Dagster run does (cdp.core.build_state). Prints a
table and writes bench/results/pipeline_<size>.json.
"""

import gc
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.report import save
from cdp.core.build_state import build_whole_project, project_settings
from cdp.core.config import PRODUCTION_DBT_EXCLUDE, dbt_log_file_args, project_var
from cdp.core.warehouse import MEMORY_LIMIT_ENV, connect_warehouse
from cdp.demo.generate import Generator
from cdp.identity.evaluation import evaluate
from cdp.identity.matching import plain_splink_clusters
from cdp.ingest.declared import publish
from cdp.ingest.load import load_table
from cdp.ingest.sources import declarations
from reverse_etl.config import load_syncs
from reverse_etl.destinations.hubspot.emulator import HubSpotEmulator
from reverse_etl.engine import run_sync

ROOT = Path(__file__).resolve().parent.parent
ROWS_PER_PERSON = 20.8  # measured on the default generator settings
SIZES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
SYNC_CONCURRENCY = int(os.environ.get("SYNC_CONCURRENCY", "4"))  # batches in flight
# DuckDB's own memory (warehouse and matcher), so the whole run stays within 8 GiB at 10M.
os.environ.setdefault(MEMORY_LIMIT_ENV, "5GB")


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


class Bench:
    def __init__(self):
        self.rows: list[dict] = []

    def stage(self, name: str, func, rows: int | None = None, child: bool = False):
        started = time.perf_counter()
        value = func()
        seconds = time.perf_counter() - started
        rss = _rss_mb(resource.RUSAGE_CHILDREN if child else resource.RUSAGE_SELF)
        self.rows.append(
            {
                "stage": name,
                "seconds": round(seconds, 3),
                "rows": rows,
                "rows_per_s": round(rows / seconds) if rows else None,
                "peak_rss_mb": round(rss),
            }
        )
        print(f"  {name}: {seconds:.1f} s", file=sys.stderr)
        return value


def _serve_hubspot(token: str, urls) -> None:
    # The emulator stands in for a remote API: its own cyclic garbage collection over the tens
    # of thousands of contacts it holds (a fifth of its time) is not the client's cost.
    gc.disable()
    emulator = HubSpotEmulator(token=token, rate_limit=None).start()
    urls.put(emulator.url)
    threading.Event().wait()  # until the benchmark ends this process


@contextmanager
def hubspot_in_own_process(token: str):
    """The emulator in a process of its own, as a remote API is: in the benchmark's process its
    threads would compete with the sync engine for the GIL."""
    context = multiprocessing.get_context("spawn")
    urls = context.Queue()
    server = context.Process(target=_serve_hubspot, args=(token, urls), daemon=True)
    server.start()
    try:
        yield urls.get(timeout=60)
    finally:
        server.terminate()
        server.join()


def _dbt(warehouse: Path, *args: str) -> None:
    """dbt on the bench's warehouse, with target and log folders of its own so that a
    benchmark and the tests can share a checkout."""
    subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            *args,
            *dbt_log_file_args(),
            "--profiles-dir",
            ".",
            "--quiet",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "CDP_WAREHOUSE": str(warehouse),
            "DBT_TARGET_PATH": str(warehouse.parent / "target"),
            "DBT_LOG_PATH": str(warehouse.parent / "logs"),
        },
        check=True,
    )


def _dbt_build(warehouse: Path) -> None:
    """As Dagster runs it in production: what changed since the last build (cdp.core.build_state),
    in one command, recorded after it."""
    target = warehouse.parent / "target"
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    command = ["build", *PRODUCTION_DBT_EXCLUDE]
    (target / "run_results.json").unlink(missing_ok=True)

    def run_dbt(selection: list[str]) -> dict:
        _dbt(warehouse, *command, *selection)
        return json.loads((target / "run_results.json").read_text(encoding="utf-8"))

    build_whole_project(
        lambda: connect_warehouse(path=warehouse),
        manifest,
        project_settings(ROOT, command),
        run_dbt,
    )


def _build_profile(warehouse: Path, count: int = 12) -> dict:
    """Where the last dbt invocation's time went: its slowest nodes, and per resource type the
    nodes run and their summed execution time (dbt runs two at a time, so the sums exceed the
    wall time)."""
    run_results = warehouse.parent / "target" / "run_results.json"
    if not run_results.exists():  # nothing had changed: dbt did not run
        return {"slowest": [], "by_resource_type": {}}
    results = json.loads(run_results.read_text())["results"]
    ranked = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:count]
    by_type: dict[str, dict] = {}
    for r in results:
        kind = by_type.setdefault(r["unique_id"].split(".")[0], {"nodes": 0, "seconds": 0.0})
        kind["nodes"] += 1
        kind["seconds"] = round(kind["seconds"] + r["execution_time"], 2)
    return {
        "slowest": [
            {"node": r["unique_id"].split(".", 2)[-1], "seconds": round(r["execution_time"], 2)}
            for r in ranked
        ],
        "by_resource_type": by_type,
    }


def _plain_splink_assignments(warehouse: Path) -> pd.DataFrame:
    """Plain Splink clusters for the match candidates; every other record on its own."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        candidates = con.sql("select * from intermediate.int_match_candidates").df()
        records = con.sql("select record_key from intermediate.int_identity_records").df()
    finally:
        con.close()
    clusters = plain_splink_clusters(candidates, threshold=project_var("cdp_match_threshold"))
    singles = records[~records.record_key.isin(clusters.record_key)]
    singles = singles.assign(profile_id=singles.record_key)
    return pd.concat([clusters, singles], ignore_index=True)


DIFF_PROFILES = 1_000_000


def diff_million_profiles(con, sync, bench: Bench) -> dict:
    """The reverse-ETL diff at 1M profiles, whatever the data size: the golden records copied
    to 1M rows, state as if all were delivered, then 1% changed and diffed (dry run)."""
    con.execute("create schema if not exists bench")
    con.execute(
        f"""create or replace table bench.customers_1m as
        with syncable as (select * from marts.customers where is_identified and email is not null)
        select * replace (
            profile_id || '-' || copy as profile_id,
            replace(email, '@', '+' || copy || '@') as email
        )
        from syncable,
            range((select {DIFF_PROFILES} // count(*) + 1 from syncable)) as copies(copy)
        limit {DIFF_PROFILES}"""
    )
    big = sync.model_copy(update={"name": "bench_diff_1m", "source": "bench.customers_1m"})
    con.execute("delete from reverse_etl.sync_state where sync_name = ?", [big.name])
    first = bench.stage(
        "reverse-ETL diff of 1M profiles, nothing delivered yet",
        lambda: run_sync(con, big, dry_run=True),
        DIFF_PROFILES,
    )
    con.execute(
        """insert into reverse_etl.sync_state (sync_name, record_key, row_hash, destination_id)
        select ?, record_key, row_hash, record_key from sync_diff""",
        [big.name],
    )
    con.execute(
        "update bench.customers_1m set city = city || ' (moved)' where hash(profile_id) % 100 = 0"
    )
    second = bench.stage(
        "reverse-ETL diff of 1M profiles, 1% changed",
        lambda: run_sync(con, big, dry_run=True),
        DIFF_PROFILES,
    )
    con.execute("delete from reverse_etl.sync_state where sync_name = ?", [big.name])
    con.execute("drop schema bench cascade")
    return {"first_added": first.added, "changed": second.changed, "unchanged": second.unchanged}


def main() -> None:
    size = os.environ.get("SIZE", "100k").lower()
    records = SIZES.get(size) or int(size)
    people = max(100, int(records / ROWS_PER_PERSON))
    work = Path(tempfile.mkdtemp(prefix="cdp-bench-"))
    landing, warehouse = work / "landing", work / "wh.duckdb"
    bench = Bench()
    print(
        f"benchmark: {people:,} people (about {records:,} source records) in {work}",
        file=sys.stderr,
    )

    stats = bench.stage("generate", lambda: Generator(people, seed=1, out=landing).run())
    rows = stats.total_rows

    def load_all():
        con = connect_warehouse(path=warehouse)
        try:
            declared = declarations()
            loaded = sum(load_table(con, t, landing).rows_new for t in declared.tables)
            # what the declared staging models read, as Dagster does
            publish(con, declared.declared_specs)
            return loaded
        finally:
            con.close()

    bench.stage("raw load", load_all, rows)
    bench.stage("raw reload (no-op)", load_all, rows)
    # The manifest is parsed once beforehand, as Dagster's DbtProject prepares it at deploy.
    _dbt(warehouse, "parse")
    bench.stage(
        "full dbt build (staging -> golden records, tests)",
        lambda: _dbt_build(warehouse),
        rows,
        child=True,
    )
    builds = {"full_build": _build_profile(warehouse)}

    new_people = max(1, people // 100)
    extra = Generator(
        new_people, seed=1, out=landing, batch="incremental", first_person=people + 1
    ).run()
    bench.stage("load 1% new people", load_all, extra.total_rows)
    bench.stage(
        "dbt build after 1% new people", lambda: _dbt_build(warehouse), extra.total_rows, child=True
    )
    builds["incremental_build"] = _build_profile(warehouse)
    # With nothing new: the fingerprints of the sources and only the models that read the
    # wall clock (the lead workflow's SLAs).
    bench.stage("dbt build with nothing new", lambda: _dbt_build(warehouse), child=True)
    builds["floor"] = _build_profile(warehouse)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        score = bench.stage("identity evaluation", lambda: evaluate(con, landing))
    bench.stage(
        "identity models alone, retrained (dbt run int_identity_records+)",
        lambda: _dbt(
            warehouse,
            "run",
            "--select",
            "int_identity_records+",
            "--exclude",
            "resource_type:snapshot",
            "--vars",
            "{cdp_rescore_matches: true}",  # train and score everything, not only new pairs
        ),
        child=True,
    )
    plain = bench.stage(
        "plain Splink dedupe of the same records", lambda: _plain_splink_assignments(warehouse)
    )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        plain_score = evaluate(con, landing, assignments=plain)

    # Sources arrive on their own schedules: new rows in one of them (support tickets of 1% new
    # people) rebuild what reads that source. After the identity scores, which count people.
    tickets_landing = work / "landing_tickets"
    Generator(
        new_people, seed=1, out=tickets_landing, batch="tickets", first_person=2 * people + 1
    ).run()
    tickets = next(t for t in declarations().tables if t.key == "support__tickets")

    def load_tickets():
        with connect_warehouse(path=warehouse) as con:
            return load_table(con, tickets, tickets_landing).rows_new

    new_tickets = bench.stage("load new rows of one source (support tickets)", load_tickets)
    bench.stage(
        "dbt build after new rows in one source",
        lambda: _dbt_build(warehouse),
        new_tickets,
        child=True,
    )
    builds["one_source"] = _build_profile(warehouse)

    os.environ["HUBSPOT_TOKEN"] = "bench-token"
    sync = load_syncs()["hubspot_contacts"]
    con = duckdb.connect(str(warehouse))
    profiles = con.execute(
        "select count(*) from marts.customers where is_identified and email is not null"
    ).fetchall()[0][0]
    with hubspot_in_own_process("bench-token") as hubspot_url:
        fast = sync.model_copy(
            update={
                "settings": {
                    "base_url": hubspot_url,
                    "rate_limit_calls": 100_000,
                    "rate_limit_period": 1,
                },
                "concurrency": SYNC_CONCURRENCY,
            }
        )
        bench.stage(
            "reverse-ETL diff (dry run)", lambda: run_sync(con, fast, dry_run=True), profiles
        )
        first = bench.stage(
            "sync all profiles to HubSpot emulator", lambda: run_sync(con, fast), profiles
        )
        again = bench.stage("unchanged re-sync", lambda: run_sync(con, fast), profiles)
    diff_1m = diff_million_profiles(con, sync, bench)
    con.close()

    table = Table(
        title=f"cdp pipeline benchmark: {people:,} people, {rows:,} source rows, "
        f"{os.cpu_count()} CPUs"
    )
    for column in ("stage", "seconds", "rows", "rows/s", "peak RSS MB"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for r in bench.rows:
        table.add_row(
            r["stage"],
            f"{r['seconds']:.2f}",
            f"{r['rows']:,}" if r["rows"] else "",
            f"{r['rows_per_s']:,}" if r["rows_per_s"] else "",
            f"{r['peak_rss_mb']:,}",
        )
    Console().print(table)
    print(
        f"identity F1 {score.resolvable_f1:.4f} (precision {score.resolvable_precision:.4f}, "
        f"recall {score.resolvable_recall:.4f}; all records {score.f1:.4f}); plain Splink F1 "
        f"{plain_score.resolvable_f1:.4f} (precision {plain_score.resolvable_precision:.4f}, "
        f"recall {plain_score.resolvable_recall:.4f}); "
        f"first sync {first.added:,} records in {first.calls} calls; "
        f"unchanged re-sync {again.calls} calls; 1M-profile diff: {diff_1m}"
    )
    save(
        f"pipeline_{size}",
        {
            "people": people,
            "source_rows": rows,
            "cpus": os.cpu_count(),
            "stages": bench.rows,
            "identity": score.as_dict(),
            "plain_splink": plain_score.as_dict(),
            "first_sync_calls": first.calls,
            "first_sync_confirmed": first.added,
            "first_sync_failed": first.failed,
            "sync_concurrency": SYNC_CONCURRENCY,
            "duckdb_memory_limit": os.environ[MEMORY_LIMIT_ENV],
            "unchanged_resync_calls": again.calls,
            "dbt_builds": builds,
            "diff_1m_profiles": diff_1m,
        },
    )


if __name__ == "__main__":
    main()
