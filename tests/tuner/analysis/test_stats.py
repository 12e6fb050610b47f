"""The confirmation's statistics: mean ± std, Welch's t-test, its 95 % CI on Welch–Satterthwaite df, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tuner.analysis.stats import (
    BETTER,
    NO_DIFFERENCE,
    WORSE,
    compare,
    compare_paired,
    summarize,
    verdict_of,
    welch_df,
)

A = [0.61, 0.63, 0.60, 0.64, 0.62, 0.65, 0.61, 0.63]
B = [0.58, 0.60, 0.57, 0.59, 0.61, 0.58, 0.56, 0.60, 0.59, 0.58]


def test_summary_is_mean_and_sample_std() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert (s.n, s.mean, s.min, s.max) == (4, 2.5, 1.0, 4.0)
    assert s.std == pytest.approx(math.sqrt(5 / 3))  # ddof 1
    assert summarize([None, float("nan"), 2.0]) == summarize([2.0])  # failed runs leave out
    assert summarize([]).mean is None and summarize([1.0]).std is None


def test_welch_against_scipy_and_the_textbook_formula() -> None:
    c = compare(A, B, "maximize")
    ref = scipy_stats.ttest_ind(A, B, equal_var=False)
    assert c.p_value == pytest.approx(ref.pvalue) and c.t == pytest.approx(ref.statistic)
    va, vb = np.var(A, ddof=1) / len(A), np.var(B, ddof=1) / len(B)
    df = (va + vb) ** 2 / (va**2 / (len(A) - 1) + vb**2 / (len(B) - 1))
    assert c.df == pytest.approx(df) == pytest.approx(welch_df(np.var(A, ddof=1), len(A), np.var(B, ddof=1), len(B)))
    half = scipy_stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert c.difference == pytest.approx(np.mean(A) - np.mean(B))
    assert (c.ci_low, c.ci_high) == (pytest.approx(c.difference - half), pytest.approx(c.difference + half))
    ci = ref.confidence_interval(0.95)  # scipy's own Welch interval
    assert (c.ci_low, c.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert (c.n_arm, c.n_reference) == (8, 10)


def test_verdict_reads_the_direction() -> None:
    assert compare(A, B, "maximize").verdict == BETTER
    assert compare(B, A, "maximize").verdict == WORSE
    assert compare(A, B, "minimize").verdict == WORSE  # a higher loss is worse
    assert compare(B, A, "minimize").verdict == BETTER
    assert verdict_of(0.1, 0.2, "maximize") == NO_DIFFERENCE
    assert verdict_of(-0.1, 0.049, "maximize") == WORSE


def test_overlapping_samples_are_no_detectable_difference() -> None:
    rng = np.random.default_rng(0)
    same = [compare(list(rng.normal(0.6, 0.02, 10)), list(rng.normal(0.6, 0.02, 10)), "maximize")
            for _ in range(200)]
    false_alarms = sum(c.verdict != NO_DIFFERENCE for c in same)
    assert false_alarms <= 20  # α = 0.05: about 10 of 200 expected
    assert all(c.ci_low is not None and c.ci_high is not None and c.ci_low <= c.difference <= c.ci_high
               for c in same)


def test_degenerate_samples() -> None:
    too_few = compare([0.6], [0.5, 0.55], "maximize")
    assert too_few.verdict is None and too_few.p_value is None and too_few.difference == pytest.approx(0.075)
    equal = compare([0.5, 0.5], [0.5, 0.5], "maximize")
    assert (equal.verdict, equal.p_value, equal.ci_low, equal.ci_high) == (NO_DIFFERENCE, 1.0, 0.0, 0.0)
    exact = compare([0.6, 0.6], [0.5, 0.5], "maximize")  # no variance at all: the difference is certain
    assert exact.verdict == BETTER and exact.p_value == 0.0 and exact.t is None
    with pytest.raises(ValueError, match="direction"):
        compare(A, B, "up")


# -- paired and corrected resampled ------------------------------------------------------------------------------
ARM = {s: v for s, v in enumerate([0.71, 0.69, 0.74, 0.70, 0.72, 0.68, 0.73, 0.75])}
REF = {s: v for s, v in enumerate([0.69, 0.68, 0.71, 0.70, 0.69, 0.67, 0.70, 0.72])}


def test_paired_against_scipy() -> None:
    c = compare_paired({**ARM, 99: 0.9}, {**REF, 98: 0.1}, "maximize")  # unpaired seeds are left out
    a, r = list(ARM.values()), list(REF.values())
    ref = scipy_stats.ttest_rel(a, r)
    assert (c.t, c.p_value, c.df) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue), 7)
    ci = ref.confidence_interval(0.95)
    assert (c.ci_low, c.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert c.wilcoxon_p == pytest.approx(scipy_stats.wilcoxon(np.subtract(a, r)).pvalue)
    assert c.difference == pytest.approx(np.mean(np.subtract(a, r))) and c.method == "paired" and c.n_arm == 8
    assert c.verdict == BETTER and compare_paired(ARM, REF, "minimize").verdict == WORSE
    assert compare(a, r, "maximize").p_value > c.p_value  # pairing removes the seed-to-seed spread


def test_the_corrected_resampled_t_test_inflates_the_variance_by_nadeau_bengio() -> None:
    ratio = 0.25  # n_test / n_train
    c = compare_paired(ARM, REF, "maximize", correction=ratio)
    d = np.subtract(list(ARM.values()), list(REF.values()))
    se = math.sqrt((1 / len(d) + ratio) * np.var(d, ddof=1))  # (1/J + n_test/n_train) · s²
    assert c.t == pytest.approx(d.mean() / se) and c.method == "resampled" and c.wilcoxon_p is None
    assert c.p_value == pytest.approx(2 * scipy_stats.t.sf(d.mean() / se, len(d) - 1))
    half = scipy_stats.t.ppf(0.975, len(d) - 1) * se
    assert (c.ci_low, c.ci_high) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))
    assert compare_paired({0: 1.0, 1: 1.0}, {0: 1.0, 1: 1.0}, "maximize").verdict == NO_DIFFERENCE
