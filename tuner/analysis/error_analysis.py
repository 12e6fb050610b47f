"""Error analysis of a confirmation: where do baseline and best differ, class by class? (No torch here.)

Each confirmation run stores its test-split confusion matrix (rows: true class, columns: predicted class).
Summed over an arm's seeds and normalised per true class, the matrices of the baseline and of the best λ set
give the change of every confusion rate; the class pairs whose confusion changed most say *what* the aux tasks
taught (or broke), which a single accuracy figure hides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Matrix = list[list[float]]


def summed(matrices: Sequence[Sequence[Sequence[float]]]) -> Matrix:
    """Element-wise sum of equally shaped confusion matrices (an arm's seeds)."""
    n = len(matrices[0])
    return [[float(sum(m[i][j] for m in matrices)) for j in range(n)] for i in range(n)]


def row_rates(matrix: Matrix) -> Matrix:
    """Each row divided by its total: the share of a true class predicted as each class (0 for an empty row)."""
    return [[x / total if (total := sum(row)) else 0.0 for x in row] for row in matrix]


def compare_confusions(
    baseline: Sequence[Sequence[Sequence[float]]], best: Sequence[Sequence[Sequence[float]]],
    class_names: Sequence[str] | None = None, top: int = 10,
) -> dict[str, Any] | None:
    """Baseline vs best: summed matrices, rates, their change, per-class accuracy and the top changed pairs.

    Returns None when either arm has no matrix (runs not finished yet) or the shapes differ.
    """
    if not baseline or not best or len(baseline[0]) != len(best[0]):
        return None
    base, new = summed(baseline), summed(best)
    n = len(base)
    names = list(class_names) if class_names and len(class_names) == n else [str(i) for i in range(n)]
    base_rates, new_rates = row_rates(base), row_rates(new)
    delta = [[new_rates[i][j] - base_rates[i][j] for j in range(n)] for i in range(n)]
    order = sorted(((i, j) for i in range(n) for j in range(n) if i != j and delta[i][j] != 0),
                   key=lambda ij: (-abs(delta[ij[0]][ij[1]]), ij))
    pairs = [{"true": names[i], "predicted": names[j], "baseline": base_rates[i][j], "best": new_rates[i][j],
              "change": delta[i][j]} for i, j in order[:top]]
    per_class = [{"class": names[i], "baseline": base_rates[i][i], "best": new_rates[i][i], "change": delta[i][i]}
                 for i in range(n)]
    return {"classes": names, "runs": {"baseline": len(baseline), "best": len(best)}, "baseline": base,
            "best": new, "baseline_rates": base_rates, "best_rates": new_rates, "change": delta,
            "pairs": pairs, "per_class": per_class}

