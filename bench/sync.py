"""Reverse-ETL delivery benchmark (not part of `make test`): the shipped `hubspot_contacts` sync
against the HubSpot emulator in a process of its own, its quota lifted (the client keeps the real
quota, 100 calls per 10 s, whenever the settings do not lift it), over RECORDS generated golden
records at several concurrency levels, RUNS times each on a fresh warehouse and emulator (this
machine's timings vary by a third from run to run: the median is reported, with the slowest and
fastest); records confirmed per second, first run and an unchanged re-run. Writes
bench/results/sync_hubspot.json.

    make bench-sync                       # 50,000 records, concurrency 1, 2 and 4, 5 runs each
    RECORDS=200000 RUNS=3 make bench-sync
"""

import os
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from bench.report import save
from bench.run import hubspot_in_own_process
from reverse_etl.config import load_syncs
from reverse_etl.engine import run_sync

RECORDS = int(os.environ.get("RECORDS", "50000"))
LEVELS = [int(n) for n in os.environ.get("CONCURRENCY", "1,2,4").split(",")]
RUNS = int(os.environ.get("RUNS", "5"))
TOKEN = "bench-token"


def _warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute(f"""create table marts.customers as
        select 'p_' || i as profile_id, 'kunde' || i || '@example.org' as email,
            'Vorname' || i as first_name, 'Nachname' || (i % 997) as last_name,
            '+49301' || i as phone, 'Berlin' as city, '10115' as postal_code,
            'DE' as country_code, 'Firma ' || (i % 251) as company_name,
            'Lead' as crm_lead_status, true as is_identified
        from range({RECORDS}) t(i)""")
    con.execute("""create table marts.customer_consents (profile_id varchar, purpose varchar,
        channel varchar, is_granted boolean)""")
    con.execute("checkpoint")  # as a dbt build leaves the file: its tables written out
    return con


def _measure(sync, level: int) -> dict:
    """One first run and one unchanged re-run on a fresh warehouse and emulator."""
    with tempfile.TemporaryDirectory() as folder, hubspot_in_own_process(TOKEN) as url:
        con = _warehouse(Path(folder) / "sync.duckdb")
        fast = sync.model_copy(
            update={
                "settings": {"base_url": url, "rate_limit_calls": 1_000_000},
                "concurrency": level,
            }
        )
        started = time.perf_counter()
        first = run_sync(con, fast)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = run_sync(con, fast)
        unchanged_seconds = time.perf_counter() - started
        con.close()
    return {
        "records": first.added,
        "calls": first.calls,
        "seconds": seconds,
        "unchanged_rerun_seconds": unchanged_seconds,
        "unchanged_rerun_calls": again.calls,
    }


def main() -> None:
    os.environ["HUBSPOT_TOKEN"] = TOKEN
    sync = load_syncs()["hubspot_contacts"]
    rows = []
    for level in LEVELS:
        runs = [_measure(sync, level) for _ in range(RUNS)]
        median = statistics.median(run["seconds"] for run in runs)
        records = runs[0]["records"]
        row = {
            "concurrency": level,
            "records": records,
            "calls": runs[0]["calls"],
            "runs": RUNS,
            "seconds": round(median, 2),
            "records_per_s": round(records / median),
            "slowest_records_per_s": round(records / max(run["seconds"] for run in runs)),
            "fastest_records_per_s": round(records / min(run["seconds"] for run in runs)),
            "unchanged_rerun_seconds": round(
                statistics.median(run["unchanged_rerun_seconds"] for run in runs), 2
            ),
            "unchanged_rerun_calls": max(run["unchanged_rerun_calls"] for run in runs),
        }
        rows.append(row)
        print(
            f"concurrency {level}: {records:,} records, median {median:.2f} s "
            f"({row['records_per_s']:,}/s; runs {row['slowest_records_per_s']:,} to "
            f"{row['fastest_records_per_s']:,}/s, {row['calls']} calls); unchanged re-run "
            f"{row['unchanged_rerun_seconds']:.2f} s, {row['unchanged_rerun_calls']} calls"
        )
    save("sync_hubspot", {"cpus": os.cpu_count(), "records": RECORDS, "runs": rows})


if __name__ == "__main__":
    main()
