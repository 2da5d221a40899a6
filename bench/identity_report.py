"""Renders the identity scores of `cdp benchmark run ... --json bench/results/identity_*.json`
(and `cdp eval identity --json > bench/results/identity_demo.json`) into docs/identity.md,
between its markers, so the figures there come from runs, not from typing."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "identity.md"
START, END = "<!-- identity-scores:start -->", "<!-- identity-scores:end -->"


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


def main() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = f"{START}\n{render()}\n{END}"
    text = re.sub(re.escape(START) + r".*?" + re.escape(END), block, text, flags=re.S)
    DOC.write_text(text, encoding="utf-8")
    print(f"rendered {DOC}")


if __name__ == "__main__":
    main()
