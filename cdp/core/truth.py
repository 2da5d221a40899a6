"""The generator's truth, written beside the landing files it generates: what evaluations score
the CDP's answers against."""

from __future__ import annotations

from pathlib import Path


class MissingTruth(FileNotFoundError):
    """No ground truth beside the landing files."""


def truth_files(landing: Path, pattern: str = "ground_truth*.csv") -> list[str]:
    """The truth files of every generated batch, oldest name first."""
    files = [str(p) for p in sorted(Path(landing).glob(pattern))]
    if not files:
        raise MissingTruth(f"no {pattern} in {landing}: nothing to score against")
    return files
