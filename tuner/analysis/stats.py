"""The statistics of a confirmation: mean ± std per arm, and one arm against another.

Three tests of ``arm − reference``, each answering its own question:

- :func:`compare_paired` (``paired``): the arms share their seeds (initialisation and batch order), so the
  per-seed differences are analysed: their mean, a t-based CI on n − 1 df, the paired t-test (and Wilcoxon's
  signed-rank test beside it). On one fixed data split it answers "does the arm beat the reference *on this
  split*"; the split's own quirks are part of that answer.
- the same with ``correction = n_test / n_train`` (``resampled``): every seed also redrew the data split, and
  the variance of the mean difference is inflated to ``(1/J + n_test/n_train) · s²`` (the corrected resampled
  t-test of Nadeau & Bengio 2003), valid although the J training sets overlap. It answers "does the arm beat
  the reference on the population of splits of this data".
- :func:`compare` (``welch``): independent samples with unequal variances, Welch's t-test and a CI on the
  Welch–Satterthwaite df; what confirmations stored before the paired analysis read.

The verdict reads the test in the study's direction: "better" means the arm beats the reference at α, "worse"
that it loses, anything else is "no detectable difference" (not evidence of no effect: a wide interval says
more seeds are needed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Verdict = Literal["better", "no detectable difference", "worse"]
BETTER: Verdict = "better"
NO_DIFFERENCE: Verdict = "no detectable difference"
WORSE: Verdict = "worse"
ALPHA = 0.05


@dataclass(frozen=True)
class Summary:
    """Mean ± sample standard deviation (ddof 1) of one arm's values."""

    n: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """``arm − reference``: the difference of means, its confidence interval, Welch's test and the verdict.

    ``verdict`` is None while either side has fewer than two values (no variance, no test).
    """

    difference: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    t: float | None
    df: float | None
    p_value: float | None
    verdict: Verdict | None
    n_arm: int
    n_reference: int
    method: str = "welch"
    wilcoxon_p: float | None = None
    correction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clean(values: Sequence[float | None]) -> np.ndarray:
    return np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def summarize(values: Sequence[float | None]) -> Summary:
    """Mean, sample std, min and max of the finite values (``None`` where there are too few)."""
    x = _clean(values)
    if x.size == 0:
        return Summary(0, None, None, None, None)
    std = float(x.std(ddof=1)) if x.size > 1 else None
    return Summary(int(x.size), float(x.mean()), std, float(x.min()), float(x.max()))


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch–Satterthwaite degrees of freedom of the difference of two means."""
    qa, qb = var_a / n_a, var_b / n_b
    denominator = qa**2 / (n_a - 1) + qb**2 / (n_b - 1)
    return (qa + qb) ** 2 / denominator if denominator > 0 else float(n_a + n_b - 2)


def verdict_of(difference: float, p_value: float, direction: str, alpha: float = ALPHA) -> Verdict:
    """Read a two-sided test in the study's direction (``maximize``: a positive difference is better)."""
    if p_value >= alpha or difference == 0:
        return NO_DIFFERENCE
    improves = difference > 0 if direction == "maximize" else difference < 0
    return BETTER if improves else WORSE


def compare(
    arm: Sequence[float | None], reference: Sequence[float | None], direction: str, alpha: float = ALPHA,
    confidence: float = 0.95,
) -> Comparison:
    """Compare ``arm`` with ``reference`` (e.g. best λ with the λ = 0 baseline): ``mean(arm) − mean(reference)``.

    Args:
        arm: the arm's values, one per seed (``None``/non-finite values of failed runs are left out).
        reference: the reference arm's values.
        direction: ``maximize`` or ``minimize``: which sign of the difference is an improvement.
        alpha: significance level of the two-sided Welch test behind the verdict.
        confidence: level of the confidence interval of the difference.
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    a, r = _clean(arm), _clean(reference)
    if a.size < 2 or r.size < 2:
        diff = float(a.mean() - r.mean()) if a.size and r.size else None
        return Comparison(diff, None, None, confidence, None, None, None, None, int(a.size), int(r.size))
    diff = float(a.mean() - r.mean())
    var_a, var_r = float(a.var(ddof=1)), float(r.var(ddof=1))
    se = math.sqrt(var_a / a.size + var_r / r.size)
    df = welch_df(var_a, int(a.size), var_r, int(r.size))
    t: float | None
    if se == 0.0:  # both arms constant: the difference is exact (scipy would answer NaN; t is infinite)
        t, p, half = (0.0, 1.0, 0.0) if diff == 0 else (None, 0.0, 0.0)
    else:
        from scipy import stats as scipy_stats  # ~1 s to import: only a confirmation needs it, not every worker

        test = scipy_stats.ttest_ind(a, r, equal_var=False)
        t, p = float(test.statistic), float(test.pvalue)
        half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Comparison(diff, diff - half, diff + half, confidence, t, df, p, verdict_of(diff, p, direction, alpha),
                      int(a.size), int(r.size))


def _t_interval(mean: float, se: float, df: float, confidence: float) -> tuple[float, float, float | None, float]:
    """``(ci_low, ci_high, t, p)`` of a mean with standard error ``se`` on ``df`` degrees of freedom."""
    if se == 0.0:  # every difference equal: the mean is exact (t infinite unless it is 0)
        return mean, mean, (0.0 if mean == 0 else None), (1.0 if mean == 0 else 0.0)
    from scipy import stats as scipy_stats

    t = mean / se
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    return mean - half, mean + half, float(t), float(2 * scipy_stats.t.sf(abs(t), df))


def paired_differences(arm: Mapping[int, float | None], reference: Mapping[int, float | None]) -> np.ndarray:
    """``arm[s] − reference[s]`` over the seeds ``s`` both have a finite value for, in seed order."""
    seeds = sorted(s for s in arm.keys() & reference.keys()
                   if arm[s] is not None and reference[s] is not None
                   and math.isfinite(arm[s]) and math.isfinite(reference[s]))  # type: ignore[arg-type]
    return np.array([float(arm[s]) - float(reference[s]) for s in seeds], dtype=float)  # type: ignore[arg-type]


def compare_paired(
    arm: Mapping[int, float | None], reference: Mapping[int, float | None], direction: str, alpha: float = ALPHA,
    confidence: float = 0.95, correction: float = 0.0,
) -> Comparison:
    """Paired comparison of two arms run on the same seeds: the mean per-seed difference ``arm − reference``.

    Args:
        arm: the arm's value per seed (``None``/non-finite values of failed runs are left out with their pair).
        reference: the reference arm's value per seed.
        direction: ``maximize`` or ``minimize``: which sign of the difference is an improvement.
        alpha: level of the two-sided test behind the verdict.
        confidence: level of the confidence interval of the mean difference.
        correction: ``n_test / n_train`` when every seed also redrew the data split (Nadeau & Bengio's corrected
            resampled t-test: the variance of the mean is ``(1/J + correction) · s²``); 0 for a fixed split.
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    d = paired_differences(arm, reference)
    method = "resampled" if correction > 0 else "paired"
    n = int(d.size)
    if n < 2:
        diff = float(d.mean()) if n else None
        return Comparison(diff, None, None, confidence, None, None, None, None, n, n, method, None,
                          correction or None)
    diff, sd = float(d.mean()), float(d.std(ddof=1))
    se = sd * math.sqrt(1.0 / n + correction)
    low, high, t, p = _t_interval(diff, se, n - 1, confidence)
    wilcoxon_p = None
    if correction == 0 and np.any(d != 0):
        from scipy import stats as scipy_stats

        wilcoxon_p = float(scipy_stats.wilcoxon(d).pvalue)
    return Comparison(diff, low, high, confidence, t, float(n - 1), p, verdict_of(diff, p, direction, alpha), n, n,
                      method, wilcoxon_p, correction or None)


def mean_interval(summary: dict[str, Any], confidence: float = 0.95) -> dict[str, Any]:
    """``{mean, ci_low, ci_high, n}``: a :class:`Summary` document's mean with its t-based confidence interval."""
    n, mean, std = summary["n"], summary["mean"], summary["std"]
    if mean is None or std is None or n < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": n}
    low, high, _, _ = _t_interval(mean, std / math.sqrt(n), n - 1, confidence)
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": n}
