"""Benchmarks (not part of `make test`): generation, raw load and staging build on DuckDB.

    make bench                 # 50k people
    PEOPLE=200000 make bench   # bigger

Prints a table and writes bench/results/foundation.json.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cdp.generate import Generator
from cdp.load import connect, load_table
from cdp.sources import TABLES

ROOT = Path(__file__).resolve().parent.parent


def _peak_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(usage, children) / 1024


def main() -> None:
    people = int(os.environ.get("PEOPLE", "50000"))
    work = Path(tempfile.mkdtemp(prefix="cdp-bench-"))
    results = []

    started = time.perf_counter()
    stats = Generator(people, seed=1, out=work / "landing").run()
    seconds = time.perf_counter() - started
    rows = stats.total_rows
    results.append(("generate", seconds, rows, _peak_rss_mb()))

    con = connect(work / "wh.duckdb")
    started = time.perf_counter()
    for table in TABLES:
        load_table(con, table, work / "landing")
    results.append(("raw load", time.perf_counter() - started, rows, _peak_rss_mb()))
    started = time.perf_counter()
    for table in TABLES:
        load_table(con, table, work / "landing")
    results.append(("raw reload (no-op)", time.perf_counter() - started, rows, _peak_rss_mb()))
    con.close()

    env = {**os.environ, "CDP_WAREHOUSE": str(work / "wh.duckdb")}
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build", "--profiles-dir", ".", "--quiet"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    results.append(("dbt build (staging + tests)", time.perf_counter() - started, rows, 0.0))

    table = Table(title=f"cdp foundation benchmark: {people:,} people, {rows:,} source rows")
    for column in ("stage", "seconds", "rows/s", "peak RSS MB"):
        table.add_column(column, justify="right" if column != "stage" else "left")
    for stage, secs, n, rss in results:
        table.add_row(stage, f"{secs:.2f}", f"{n / secs:,.0f}", f"{rss:,.0f}" if rss else "-")
    Console().print(table)
    out = ROOT / "bench" / "results" / "foundation.json"
    out.write_text(
        json.dumps(
            {
                "people": people,
                "source_rows": rows,
                "machine_cpus": os.cpu_count(),
                "stages": [
                    {
                        "stage": s,
                        "seconds": round(t, 3),
                        "rows_per_s": round(n / t),
                        "peak_rss_mb": r,
                    }
                    for s, t, n, r in results
                ],
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
