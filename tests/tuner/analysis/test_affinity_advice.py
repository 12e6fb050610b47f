"""The affinity advises only when it is clear and the λ slice agrees; an ablation verdict decides instead."""

from __future__ import annotations

from storage import TrialRecord
from tuner.analysis.affinity_report import DROP, KEEP, NO_ADVICE, affinity_report


def trial(number: int, lambdas: dict[str, float], value: float, to_main: dict[str, float]) -> TrialRecord:
    doc = {"tasks": ["main", *to_main], "to_main": to_main, "matrix": {}, "probes": 4}
    return TrialRecord(study_id=1, number=number, optuna_trial_id=number, params=lambdas, state="complete",
                       attempt=1, worker_id=None, heartbeat_at=None, lease_expires_at=None, started_at=None,
                       finished_at=None, value=value, reason="", result={"lambdas": lambdas, "affinity": doc})


def trials() -> list[TrialRecord]:
    """8 trials: the value rises with helpful's λ and falls with harmful's; tiny's affinity is ~-8e-5 ± 1e-4 (as
    the issue saw on every synthetic task) and its λ does nothing."""
    out = []
    for i in range(8):
        lambdas = {"helpful": 0.25 * (i + 1), "harmful": 0.25 * (8 - i), "tiny": 0.25 * ((i * 5) % 8 + 1)}
        value = 0.6 + 0.05 * lambdas["helpful"] - 0.04 * lambdas["harmful"]
        to_main = {"helpful": 0.02 + 0.001 * (i % 3), "harmful": -0.015 - 0.001 * (i % 2),
                   "tiny": -8e-5 + 1e-4 * ((-1) ** i) * 0.9}
        out.append(trial(i, lambdas, value, to_main))
    return out


def test_clear_affinity_that_agrees_with_the_slice_advises() -> None:
    report = affinity_report(trials())
    assert report is not None
    rows = {r["task"]: r for r in report["summary"]}
    assert rows["helpful"]["advice"] == KEEP and rows["harmful"]["advice"] == DROP
    assert rows["helpful"]["ci_low"] > 0 and rows["harmful"]["ci_high"] < 0 and rows["harmful"]["slice_rho"] < 0
    assert rows["tiny"]["advice"] == NO_ADVICE and abs(rows["tiny"]["affinity"]) < 1e-3  # negligible: no advice
    assert report["drop_candidates"] == ["harmful"]
    assert any(line.startswith("tiny: no advice (") for line in report["advice"])


def test_a_slice_that_disagrees_or_an_ablation_verdict_overrides_the_affinity() -> None:
    flipped = [t.__class__(**{**t.__dict__, "value": 1.2 - (t.value or 0)}) for t in trials()]  # slices reversed
    rows = {r["task"]: r for r in affinity_report(flipped)["summary"]}  # type: ignore[index]
    assert rows["helpful"]["advice"] == rows["harmful"]["advice"] == NO_ADVICE
    ablation = [{"task": "helpful", "verdict": "hurts"}, {"task": "tiny", "verdict": "helps"}]
    rows = {r["task"]: r for r in affinity_report(trials(), ablation=ablation)["summary"]}  # type: ignore[index]
    assert (rows["helpful"]["advice"], rows["helpful"]["advice_from"]) == (DROP, "ablation")
    assert (rows["tiny"]["advice"], rows["harmful"]["advice"]) == (KEEP, DROP)
