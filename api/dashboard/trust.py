"""The study page's "Trust" panel: the confirmation, the task affinity and the error analysis (issue #7).

Built from a ``StudySnapshot`` (its confirmation runs and affinity report) with the same functions as
``GET …/confirmation`` and ``GET …/affinity`` (``tuner.analysis.confirm``, ``tuner.analysis.affinity_report``;
the figures: ``api.dashboard.trust_figures``), so the page, the report and the REST answers always agree.
``trust_panel`` returns the panel's tables and its figures apart: the figures join the study page's other
figures (drawn only when their key changed), the tables its JSON.
"""

from __future__ import annotations

from typing import Any

from api.config import API_PREFIX
from api.dashboard.snapshot import StudySnapshot
from api.dashboard.trust_figures import affinity_figure, confirmation_figure, confusion_figure
from tuner.analysis.affinity_report import with_ablation
from tuner.analysis.confirm import CONFIRMABLE_STATUSES, ablation_lines, confirmation_report, verdict_line

#: What a panel shows of each arm and comparison (the rest of the report is in ``GET …/confirmation``).
_ARM_KEYS = ("arm", "kind", "params", "trial", "seeds", "counts", "val", "test", "effective_lambdas")
_ERROR_KEYS = ("classes", "runs", "pairs", "per_class")


def confirmation_request(snapshot: StudySnapshot) -> dict[str, str]:
    """How to ask for a confirmation of this study: the CLI command, the REST call, and a sentence."""
    study = snapshot.study
    cli, api = f"auxtune confirm {study.name}", f"POST {API_PREFIX}/studies/{study.id}/confirm"
    how = f"run `{cli}` (or {api}) to retrain the best λ set and the baseline over fresh seeds"
    if len(study.directions) != 1:
        text = f"study {study.name!r} has {len(study.directions)} objectives and no single best λ set to confirm"
    elif study.status not in CONFIRMABLE_STATUSES:
        text = f"no confirmation yet: once the search is done, {how}"
    else:
        text = f"no confirmation yet: {how}"
    return {"cli": cli, "api": api, "text": text}


def _confirmation(snapshot: StudySnapshot) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    if not snapshot.runs:
        return None, {}
    report = confirmation_report(snapshot.study, snapshot.runs)
    panel = {key: report[key] for key in ("state", "counts", "seeds", "metric", "val_metric", "direction", "alpha",
                                          "verdict", "comparisons", "method", "ablation")}
    panel["ablation_lines"] = ablation_lines(report)
    panel["why"] = (report.get("sequential") or {}).get("why")
    panel["arms"] = [{k: arm.get(k) for k in _ARM_KEYS} for arm in report["arms"]]
    panel["verdict_line"] = verdict_line(report)
    figures = {"confirmation": confirmation_figure(report)}
    errors = report["error_analysis"]
    if errors is not None:
        panel["error_analysis"] = {k: errors[k] for k in _ERROR_KEYS}
        figures["confusion"] = confusion_figure(errors)
    else:
        panel["error_analysis"] = None
    return panel, figures


def _affinity(snapshot: StudySnapshot, ablation: list[dict[str, Any]]) -> tuple[dict[str, Any] | None,
                                                                             dict[str, Any]]:
    report = snapshot.affinity
    if report is None:
        return None, {}
    report = with_ablation(report, ablation)  # the confirmation's per-task verdicts decide the advice
    panel = {key: report[key] for key in ("tasks", "summary", "ranking", "drop_candidates", "advice")}
    panel["trials"] = len(report["trials"])
    return panel, {"affinity": affinity_figure(report)}


def trust_panel(snapshot: StudySnapshot) -> tuple[dict[str, Any], dict[str, Any]]:
    """The panel's data and its figures (only those with data: ``confirmation``, ``confusion``, ``affinity``).

    Without a confirmation, ``request`` says how to ask for one; without a trial that measured affinity,
    ``affinity`` is None.
    """
    confirmation, figures = _confirmation(snapshot)
    affinity, affinity_figures = _affinity(snapshot, (confirmation or {}).get("ablation") or [])
    panel = {"confirmation": confirmation, "request": None if confirmation else confirmation_request(snapshot),
             "affinity": affinity}
    return panel, {**figures, **affinity_figures}
