"""Renders the identity scores of `cdp benchmark run ... --json bench/results/identity_*.json`
(and `cdp eval identity --json > bench/results/identity_demo.json`) into docs/identity.md, and
those of `make bench` (bench/results/pipeline_<size>.json) into docs/benchmarks.md, between
their markers, so the figures there come from runs, not from typing."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "identity.md"
START, END = "<!-- identity-scores:start -->", "<!-- identity-scores:end -->"
SIZES_DOC = ROOT / "docs" / "benchmarks.md"
SIZES_START, SIZES_END = "<!-- identity-at-size:start -->", "<!-- identity-at-size:end -->"


def _row(name: str, who: str, score: dict, seconds: str) -> str:
    return (
        f"| {name} | {who} | {score['records_scored']:,} | {score['precision']:.4f} | "
        f"{score['recall']:.4f} | **{score['f1']:.4f}** | {score['bcubed_f1']:.4f} | "
        f"{score['resolvable_f1']:.4f} | {seconds} |"
    )


def render() -> str:
    lines = [
        "| data | resolver | records | precision | recall | F1 | B-cubed F1 | F1 resolvable "
        "| pipeline s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(RESULTS.glob("identity_*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        name = run.get("dataset", path.stem.removeprefix("identity_"))
        seconds = f"{run['pipeline_seconds']:.0f}" if "pipeline_seconds" in run else ""
        if "cdp" in run:
            lines.append(_row(name, "cdp", run["cdp"], seconds))
            lines.append(_row(name, "plain Splink (same candidates)", run["plain_splink"], ""))
        else:  # a `cdp eval identity --json` of the demo
            lines.append(_row(name, "cdp", run, seconds))
    return "\n".join(lines)


def _scores(score: dict) -> str:
    return (
        f"{score['resolvable_f1']:.4f} ({score['resolvable_precision']:.4f} / "
        f"{score['resolvable_recall']:.4f})"
    )


def render_sizes() -> str:
    """One row per `make bench` size: resolvable F1 (precision / recall), all-records F1, the
    retrained identity models' time, and plain Splink on the same records."""
    lines = [
        "| size | people | source rows | cdp resolvable F1 (P / R) | cdp F1, all records "
        "| identity models retrained | plain Splink resolvable F1 (P / R) |",
        "|---|---|---|---|---|---|---|",
    ]
    runs = {
        path.stem.removeprefix("pipeline_"): json.loads(path.read_text(encoding="utf-8"))
        for path in RESULTS.glob("pipeline_*.json")
    }
    for size, run in sorted(runs.items(), key=lambda item: item[1]["source_rows"]):
        seconds = next(
            (s["seconds"] for s in run["stages"] if s["stage"].startswith("identity models")), None
        )
        lines.append(
            f"| {size} | {run['people']:,} | {run['source_rows']:,} | "
            f"{_scores(run['identity'])} | {run['identity']['f1']:.4f} | "
            f"{'' if seconds is None else f'{seconds:.1f} s'} | {_scores(run['plain_splink'])} |"
        )
    return "\n".join(lines)


def _render_into(doc: Path, start: str, end: str, table: str) -> None:
    text = doc.read_text(encoding="utf-8")
    block = f"{start}\n{table}\n{end}"
    text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    doc.write_text(text, encoding="utf-8")
    print(f"rendered {doc}")


def main() -> None:
    if any(RESULTS.glob("identity_*.json")):
        _render_into(DOC, START, END, render())
    if any(RESULTS.glob("pipeline_*.json")):
        _render_into(SIZES_DOC, SIZES_START, SIZES_END, render_sizes())


if __name__ == "__main__":
    main()
