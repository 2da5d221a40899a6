"""Reasons for a linear model's score: per row, the features that raise it most (the fitted
coefficient times the row's transformed value, measured from the average row)."""

from __future__ import annotations

import numpy as np
from sklearn.pipeline import Pipeline


def top_reasons(
    model: Pipeline,
    x,
    names: list[str],
    top: int = 3,
    floor: float = 0.05,
    direction: bool = False,
) -> list[str]:
    """`model`: transforms, then a linear estimator with `coef_`; `names`: a readable name per
    transformed column. Contributions below `floor` (log-odds or log-rate) are no reason.
    `direction`: say whether the value is high or low (for standardized numbers)."""
    matrix = model[:-1].transform(x)
    matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    contributions = matrix * np.ravel(model[-1].coef_)
    reasons = []
    for row, values in zip(contributions, matrix, strict=True):
        best = np.argsort(-row)[:top]
        reasons.append(", ".join(_named(names[i], i, values, direction) for i in best
                                 if row[i] > floor))  # fmt: skip
    return reasons


def _named(name: str, column: int, values, direction: bool) -> str:
    if not direction:
        return name
    return f"{'high' if values[column] > 0 else 'low'} {name}"
