"""Renders the README's demo figures from a run's output (`make demo` keeps it in logs/demo.log),
between the README's markers, so they come from a run, not from typing:

    make demo && make readme
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START, END = "<!-- demo-output:start -->", "<!-- demo-output:end -->"


def _between(lines: list[str], first: str, last: str) -> list[str]:
    """The lines from the first one starting with `first` (leading blanks aside) to the next
    one holding `last` (both kept); nothing when either is missing."""
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith(first)), None)
    if start is None:
        return []
    end = next((i for i in range(start, len(lines)) if last in lines[i]), None)
    return lines[start : end + 1] if end is not None else []


def _starting(lines: list[str], *prefixes: str) -> list[str]:
    """Each line starting with one of `prefixes`, joined with the lines a narrow terminal
    wrapped off it (they start no section of their own: no `name:`, no table, no table
    title, centred or above its table's top border)."""
    found = []
    for i, line in enumerate(lines):
        if not line.lstrip().startswith(prefixes):
            continue
        parts = [line]
        for j in range(i + 1, len(lines)):
            following, after = lines[j], lines[j + 1] if j + 1 < len(lines) else ""
            if (
                not following.strip()
                or re.match(r"^(\s|[\w ]+:|[┏┃┡│└])", following)
                or after.startswith("┏")
            ):
                break
            parts.append(following.strip())
        found.append(" ".join(parts))
    return found


def excerpt(log: str) -> list[str]:
    """What the README shows of a demo run: the run summary, the models' quality lines, the
    identity scores, what the syncs delivered, the live part and the time it took."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line.rstrip()) for line in log.splitlines()]
    # the clone's own path says nothing to a reader
    lines = [re.sub(r"^Warehouse /\S*/(warehouse/\S+)$", r"Warehouse \1", line) for line in lines]
    summary = _between(lines, "Warehouse ", " succeeded in ")
    identity = _between(lines, "Identity resolution", "└")
    if not summary:
        raise SystemExit("no run summary in the log: did `make demo` run to its end?")
    return [
        *summary,
        *_starting(lines, "Churn model:", "Lead model:", "Churn vs. truth:"),
        *identity,
        *_starting(lines, "Emulators now hold:"),
        *_between(lines, "collector:", "after they were sent"),
        *_starting(lines, "make demo: done"),
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print("usage: python -m bench.demo_report logs/demo.log  (the output of `make demo`)")
        return 2
    block = "\n".join(excerpt(Path(argv[0]).read_text(encoding="utf-8", errors="replace")))
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{README}: the markers {START} and {END} are missing")
        return 2
    rendered = f"{START}\n```\n{block}\n```\n{END}"
    text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: rendered, text, flags=re.S)
    README.write_text(text, encoding="utf-8")
    print(f"rendered {README} from {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
