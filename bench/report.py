"""Bench results in, docs out: every benchmark writes its figures to `bench/results/<name>.json`
(committed, with the commit and the time it measured) through `save`, and `python -m
bench.report` renders them into the docs between `<!-- <block>:start -->` and
`<!-- <block>:end -->` markers, so a figure in the docs is a run's, not a typed one.
`--stamp FILE...` first stamps results a `cdp` command wrote.
`stale_blocks()` lists the blocks that differ from what their results render (a test holds it
empty)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def _commit() -> str:
    """The measured code: the commit, marked `+changes` when the work tree differed from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            # results a benchmark just wrote are not a change of the measured code
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}+changes" if head and dirty else head or "unknown"


def save(name: str, result: dict) -> Path:
    """Writes one benchmark's result, stamped with what was measured and when."""
    out = RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    stamped = {
        "commit": _commit(),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **result,
    }
    out.write_text(json.dumps(stamped, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return out


def stamp(paths: list[str]) -> None:
    """Stamps results written by a command outside bench (`cdp benchmark run --json`)."""
    for path in map(Path, paths):
        save(path.stem, json.loads(path.read_text(encoding="utf-8")))


def _load(results: Path, pattern: str) -> dict[str, dict]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(results.glob(pattern))
    }


def _measured(runs) -> str:
    """Which code and day the figures of a block come from."""
    stamps = sorted({(run.get("commit", "?"), run.get("measured_at", "?")[:10]) for run in runs})
    return "Measured on " + "; ".join(f"{commit} ({day})" for commit, day in stamps) + "."


# identity ------------------------------------------------------------------------------------


def _score_row(name: str, who: str, score: dict, seconds: str) -> str:
    return (
        f"| {name} | {who} | {score['records_scored']:,} | {score['precision']:.4f} | "
        f"{score['recall']:.4f} | **{score['f1']:.4f}** | {score['bcubed_f1']:.4f} | "
        f"{score['resolvable_f1']:.4f} | {seconds} |"
    )


def identity_scores(runs: dict[str, dict]) -> str:
    """`cdp benchmark run ... --json` and `cdp eval identity --json` of the demo."""
    lines = [
        "| data | resolver | records | precision | recall | F1 | B-cubed F1 | F1 resolvable "
        "| pipeline s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for stem, run in runs.items():
        name = run.get("dataset", stem.removeprefix("identity_"))
        seconds = f"{run['pipeline_seconds']:.0f}" if "pipeline_seconds" in run else ""
        if "cdp" in run:
            lines.append(_score_row(name, "cdp", run["cdp"], seconds))
            plain = run["plain_splink"]
            lines.append(_score_row(name, "plain Splink (same candidates)", plain, ""))
        else:
            lines.append(_score_row(name, "cdp", run, seconds))
    return "\n".join(lines) + "\n\n" + _measured(runs.values())


def _resolvable(score: dict) -> str:
    return (
        f"{score['resolvable_f1']:.4f} ({score['resolvable_precision']:.4f} / "
        f"{score['resolvable_recall']:.4f})"
    )


def _by_size(runs: dict[str, dict]) -> list[tuple[str, dict]]:
    return sorted(
        ((stem.removeprefix("pipeline_"), run) for stem, run in runs.items()),
        key=lambda item: item[1]["source_rows"],
    )


def _stage(run: dict, prefix: str) -> dict | None:
    return next((s for s in run["stages"] if s["stage"].startswith(prefix)), None)


def identity_at_size(runs: dict[str, dict]) -> str:
    """One row per `make bench` size: resolvable F1 (precision / recall), all-records F1, the
    retrained identity models' time, and plain Splink on the same records."""
    lines = [
        "| size | people | source rows | cdp resolvable F1 (P / R) | cdp F1, all records "
        "| identity models retrained | plain Splink resolvable F1 (P / R) |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, run in _by_size(runs):
        stage = _stage(run, "identity models")
        seconds = "" if stage is None else f"{stage['seconds']:.1f} s"
        lines.append(
            f"| {size} | {run['people']:,} | {run['source_rows']:,} | "
            f"{_resolvable(run['identity'])} | {run['identity']['f1']:.4f} | "
            f"{seconds} | "
            f"{_resolvable(run['plain_splink'])} |"
        )
    return "\n".join(lines)


def _cell(stage: dict | None) -> str:
    if stage is None:
        return ""
    seconds = stage["seconds"]
    text = f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    if stage.get("rows_per_s"):
        text += f" ({stage['rows']:,}: {_rate(stage['rows_per_s'])})"
    return text


def _rate(per_second: float) -> str:
    if per_second >= 1_000_000:
        return f"{per_second / 1_000_000:.1f}M/s"
    if per_second >= 10_000:
        return f"{per_second / 1000:.0f}k/s"
    return f"{per_second:,.0f}/s"


def pipeline_stages(runs: dict[str, dict]) -> str:
    """Every stage of `make bench`, one column per size, and the peak memory of the run."""
    sizes = _by_size(runs)
    header = " | ".join(
        f"{size}: {run['source_rows']:,} rows, {run['people']:,} people" for size, run in sizes
    )
    lines = [f"| stage | {header} |", "|---" * (len(sizes) + 1) + "|"]
    names = list(dict.fromkeys(s["stage"] for _, run in sizes for s in run["stages"]))
    for name in names:
        cells = " | ".join(
            _cell(next((s for s in run["stages"] if s["stage"] == name), None)) for _, run in sizes
        )
        lines.append(f"| {name} | {cells} |")
    peaks = " | ".join(
        f"{max(s['peak_rss_mb'] for s in run['stages']) / 1024:.1f} GiB" for _, run in sizes
    )
    lines.append(f"| peak memory (largest process) | {peaks} |")
    return "\n".join(lines) + "\n\n" + _measured(run for _, run in sizes)


# The dbt builds of a bench run: the stage's name and its key in "dbt_builds".
BUILDS = (
    ("full dbt build", "full_build", "full build"),
    ("dbt build after 1%", "incremental_build", "after 1% new people"),
    ("dbt build with nothing new", "floor", "with nothing new"),
    ("dbt build after new rows in one source", "one_source", "after new rows in one source"),
)


def dbt_builds(runs: dict[str, dict]) -> str:
    """Per dbt build of the bench and size: its wall time, and the models and tests it ran
    (a build runs what changed since the last one)."""
    sizes = [(size, run) for size, run in _by_size(runs) if run.get("dbt_builds")]
    lines = [
        "| dbt build | " + " | ".join(size for size, _ in sizes) + " |",
        "|---" * (len(sizes) + 1) + "|",
    ]
    for prefix, key, label in BUILDS:
        cells = []
        for _, run in sizes:
            stage, profile = _stage(run, prefix), run["dbt_builds"].get(key)
            if stage is None or profile is None:
                cells.append("")
                continue
            ran = profile["by_resource_type"]
            counts = ", ".join(
                f"{ran.get(kind, {}).get('nodes', 0)} {kind}s" for kind in ("model", "test")
            )
            cells.append(f"{stage['seconds']:.1f} s ({counts})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    slowest = [
        ", ".join(
            f"{node['node'].split('.')[-1]} {node['seconds']:.1f} s"
            for node in run["dbt_builds"].get("incremental_build", {}).get("slowest", [])[:4]
        )
        for _, run in sizes
    ]
    lines.append("| slowest nodes after 1% new people | " + " | ".join(slowest) + " |")
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def targets(runs: dict[str, dict]) -> str:
    """The issues' targets against the latest results of every benchmark."""
    rows = []
    sized = _by_size({stem: run for stem, run in runs.items() if stem.startswith("pipeline_")})
    pipeline = dict(sized)
    for size, floor in (("100k", 0.99), ("1m", 0.98), ("10m", 0.95)):
        if size in pipeline:
            f1 = pipeline[size]["identity"]["resolvable_f1"]
            rows.append((f"identity resolvable F1 at {size} >= {floor}", f"{f1:.4f}", f1 >= floor))
    for size, limit in (("1m", 30), ("10m", 180)):
        if size in pipeline:
            full = _stage(pipeline[size], "full dbt build")
            gib = full["peak_rss_mb"] / 1024
            within = full["seconds"] <= limit and gib <= 8
            rows.append(
                (
                    f"{size} full build <= {limit} s within 8 GiB",
                    f"{full['seconds']:.1f} s, {gib:.1f} GiB",
                    within,
                )
            )
    for size in ("1m", "10m"):
        if size in pipeline:
            full = _stage(pipeline[size], "full dbt build")["seconds"]
            after = _stage(pipeline[size], "dbt build after 1%")["seconds"]
            share = after / full
            rows.append(
                (
                    f"{size}: run after 1% new data <= 10% of the full build",
                    f"{share:.0%} ({after:.1f} of {full:.1f} s)",
                    share <= 0.10,
                )
            )
    for size, run in sized:
        # runs before builds of what changed named this stage "... (floor)"
        idle = next((s for s in run["stages"] if s["stage"] == "dbt build with nothing new"), None)
        if idle and size in ("1m", "10m"):
            rows.append(
                (
                    f"{size}: a build with nothing new takes seconds (<= 5 s)",
                    f"{idle['seconds']:.1f} s",
                    idle["seconds"] <= 5,
                )
            )
        diff = _stage(run, "reverse-ETL diff of 1M profiles, 1% changed")
        if diff:
            rows.append(
                (
                    f"{size}: diff of 1M profiles <= 5 s",
                    f"{diff['seconds']:.1f} s",
                    diff["seconds"] <= 5,
                )
            )
        # Records the destination rejected have no state and are offered again, by design.
        retry_calls = -(-run.get("first_sync_failed", 0) // 100)
        rows.append(
            (
                f"{size}: unchanged re-sync sends nothing but what was rejected",
                f"{run['unchanged_resync_calls']} call(s) ({run.get('first_sync_failed', 0)} "
                "rejected before)",
                run["unchanged_resync_calls"] <= retry_calls,
            )
        )
    if "sync_hubspot" in runs:
        best = max(runs["sync_hubspot"]["runs"], key=lambda row: row["records_per_s"])
        rows.append(
            (
                ">= 50,000 records/s to the HubSpot emulator",
                f"{best['records_per_s']:,}/s, median of {best['runs']} runs "
                f"(concurrency {best['concurrency']})",
                best["records_per_s"] >= 50_000,
            )
        )
    on_redis = [run for stem, run in runs.items() if stem.startswith("profile_api_redis")]
    if on_redis:
        # At the target's load where a run offered it, else the best run at saturation.
        at_load = [run for run in on_redis if (run.get("offered_per_s") or 0) >= 2000]
        api = min(at_load or on_redis, key=lambda run: run["p99_ms"])
        offered = api.get("offered_per_s")
        load = f"{offered:,.0f}/s offered: " if offered else "at saturation: "
        rows.append(
            (
                "profile API on Redis: >= 2,000 requests/s at p99 <= 10 ms",
                f"{load}{api['requests_per_s']:,}/s answered, p99 {api['p99_ms']:.1f} ms",
                api["requests_per_s"] >= 1960 and api["p99_ms"] <= 10,
            )
        )
    lines = ["| target | measured | |", "|---|---|---|"]
    lines += [f"| {target} | {measured} | {_met(ok)} |" for target, measured, ok in rows]
    return "\n".join(lines)


# activation and real time --------------------------------------------------------------------


def sync_throughput(runs: dict[str, dict]) -> str:
    run = runs["sync_hubspot"]
    lines = [
        "| concurrency | records | calls | runs | median seconds | records/s (median) "
        "| slowest to fastest run | unchanged re-run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in run["runs"]:
        lines.append(
            f"| {row['concurrency']} | {row['records']:,} | {row['calls']:,} | {row['runs']} | "
            f"{row['seconds']:.2f} | {row['records_per_s']:,} | "
            f"{row['slowest_records_per_s']:,} to {row['fastest_records_per_s']:,}/s | "
            f"{row['unchanged_rerun_seconds']:.2f} s, {row['unchanged_rerun_calls']} calls |"
        )
    return "\n".join(lines) + f"\n\n{_measured([run])} {run['cpus']} cores."


def profile_api_load(runs: dict[str, dict]) -> str:
    lines = [
        "| store | server processes | clients | offered | requests | requests/s | p50 ms "
        "| p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs.values():
        lines.append(
            f"| {run['store']} | {run['server_workers']} | {run['clients']} | "
            f"{_offered(run)} | {run['requests']:,} | {run['requests_per_s']:,} | "
            f"{run['p50_ms']:.2f} | {run['p99_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n\n" + _measured(runs.values())


def _offered(run: dict) -> str:
    offered = run.get("offered_per_s")
    return f"{offered:,.0f}/s" if offered else "as fast as answered"


def _seconds_pair(run: dict, key: str) -> str:
    p50, p99 = run.get(f"{key}_p50_s"), run.get(f"{key}_p99_s")
    return "not measured" if p50 is None else f"p50 {p50} s, p99 {p99} s"


def collector_load(runs: dict[str, dict]) -> str:
    run = runs["collector"]
    rows = [
        ("clients x batch size", f"{run['clients']} x {run['batch_size']} events"),
        ("events accepted", f"{run['events_accepted']:,} in {run['seconds']} s"),
        ("events/s", f"{run['events_per_s']:,}"),
        ("request latency", f"p50 {run['request_p50_ms']} ms, p99 {run['request_p99_ms']} ms"),
        ("answer to segment landed", _seconds_pair(run, "answer_to_landed")),
        (
            f"send to profile API ({run['probes_shown_by_api']} of {run['probes']} probes)",
            _seconds_pair(run, "send_to_api"),
        ),
        (
            f"send to `raw.web__events` (loader every {run['load_every_s']} s, "
            f"{run['probes_loaded']} probes)",
            _seconds_pair(run, "send_to_warehouse"),
        ),
    ]
    lines = ["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return (
        "\n".join(lines)
        + f"\n\n{_measured([run])} {run['cores']} cores, profile store {run['profile_store']}."
    )


@dataclass(frozen=True)
class Block:
    doc: str
    name: str
    results: str  # glob in bench/results
    render: Callable[[dict[str, dict]], str]


BLOCKS = (
    Block("docs/identity.md", "identity-scores", "identity_*.json", identity_scores),
    Block("docs/benchmarks.md", "pipeline-stages", "pipeline_*.json", pipeline_stages),
    Block("docs/benchmarks.md", "identity-at-size", "pipeline_*.json", identity_at_size),
    Block("docs/benchmarks.md", "dbt-builds", "pipeline_*.json", dbt_builds),
    Block("docs/benchmarks.md", "targets", "*.json", targets),
    Block("docs/benchmarks.md", "sync-throughput", "sync_hubspot.json", sync_throughput),
    Block("docs/profile-api.md", "profile-api-load", "profile_api_*.json", profile_api_load),
    Block("docs/collector.md", "collector-load", "collector.json", collector_load),
)


def _markers(block: Block) -> tuple[str, str]:
    return f"<!-- {block.name}:start -->", f"<!-- {block.name}:end -->"


def _pattern(block: Block) -> re.Pattern:
    start, end = _markers(block)
    return re.compile(re.escape(start) + r"\n(.*?)\n?" + re.escape(end), flags=re.S)


def _rendered(block: Block, root: Path) -> str | None:
    runs = _load(root / "bench" / "results", block.results)
    return block.render(runs) if runs else None


def stale_blocks(root: Path = ROOT) -> list[str]:
    """Blocks whose doc text is not what their committed results render (or that are missing)."""
    stale = []
    for block in BLOCKS:
        text = (root / block.doc).read_text(encoding="utf-8")
        found = _pattern(block).search(text)
        expected = _rendered(block, root)
        if found is None or expected is None or found.group(1).strip() != expected.strip():
            stale.append(f"{block.doc}: {block.name}")
    return stale


def render_docs(root: Path = ROOT) -> int:
    """Renders every block whose results exist; 1 when a doc lacks a block's markers."""
    for block in BLOCKS:
        expected = _rendered(block, root)
        path = root / block.doc
        text = path.read_text(encoding="utf-8")
        if expected is None:
            print(f"{block.doc}: {block.name}: no bench/results/{block.results}, left as it is")
            continue
        if not _pattern(block).search(text):
            print(f"{block.doc}: no {block.name} markers", file=sys.stderr)
            return 1
        start, end = _markers(block)
        block_text = f"{start}\n{expected}\n{end}"
        text = _pattern(block).sub(lambda _, new=block_text: new, text)
        path.write_text(text, encoding="utf-8")
        print(f"{block.doc}: {block.name} rendered")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--stamp"]:
        stamp(sys.argv[2:])
    sys.exit(render_docs())
