"""The Plotly figures (JSON) of the trust panel and of the trust documents: confirmation, confusion, affinity.

``tuner.analysis`` builds the documents without figures (it reads finished work, it draws nothing); the figures
are added here, where the documents are served: ``GET …/confirmation`` and ``auxtune confirm --json`` send the
report with its error analysis' figure (``confirmation_document``), ``GET …/affinity`` the affinity report with
its matrix, and the study page draws all three (``api.dashboard.trust``).
"""

from __future__ import annotations

from typing import Any


def confirmation_figure(report: dict[str, Any]) -> dict[str, Any]:
    """Every arm side by side, mean ± std over its seeds of the validation and test metric."""
    arms = [a["arm"] for a in report["arms"]]
    data = []
    for split, metric in (("val", report["val_metric"]), ("test", report["metric"])):
        data.append({"type": "bar", "name": metric, "x": arms, "y": [a[split]["mean"] for a in report["arms"]],
                     "error_y": {"type": "data", "array": [a[split]["std"] or 0.0 for a in report["arms"]],
                                 "visible": True},
                     "customdata": [a[split]["n"] for a in report["arms"]],
                     "hovertemplate": "%{x}: %{y:.4f} ± %{error_y.array:.4f} (%{customdata} seeds)"})
    return {"data": data, "layout": {
        "title": {"text": f"Confirmation over {report['seeds']} seeds: mean ± std per arm"}, "barmode": "group",
        "xaxis": {"title": {"text": "arm"}}, "yaxis": {"title": {"text": report["metric"]}}}}


def confusion_figure(analysis: dict[str, Any]) -> dict[str, Any]:
    """The change of confusion rates off the diagonal of an error analysis
    (``tuner.analysis.error_analysis.compare_confusions``), best − baseline: red where best confuses more."""
    names = analysis["classes"]
    # The diagonal (correct predictions) is left blank: there a rise is good, off it a rise is bad.
    z = [[None if i == j else x for j, x in enumerate(row)] for i, row in enumerate(analysis["change"])]
    text = [["" if x is None else f"{x:+.1%}" for x in row] for row in z]
    return {
        "data": [{"type": "heatmap", "z": z, "x": names, "y": names, "text": text,
                  "texttemplate": "%{text}", "colorscale": "RdBu", "reversescale": True, "zmid": 0,
                  "colorbar": {"title": {"text": "Δ rate"}}}],
        "layout": {"title": {"text": "Confusion change on the test split (best − baseline, per true class)"},
                   "xaxis": {"title": {"text": "predicted"}}, "yaxis": {"title": {"text": "true"},
                                                                       "autorange": "reversed"}},
    }


def confirmation_document(report: dict[str, Any]) -> dict[str, Any]:
    """A confirmation report (``tuner.analysis.confirm.confirmation_report``) as it is served: its error analysis,
    when there is one, ends with the figure of its confusion change (``figure``)."""
    errors = report["error_analysis"]
    if errors is None:
        return report
    return {**report, "error_analysis": {**errors, "figure": confusion_figure(errors)}}


def affinity_figure(report: dict[str, Any]) -> dict[str, Any]:
    """The mean affinity matrix Z_{source→target} of an affinity report (``tuner.analysis.affinity_report``), as
    in TAG's figures."""
    tasks = report["tasks"]
    z = [[report["matrix"][src][dst] for dst in tasks] for src in tasks]
    text = [["" if v is None else f"{v:+.2e}" for v in row] for row in z]
    return {
        "data": [{"type": "heatmap", "z": z, "x": tasks, "y": tasks, "text": text, "texttemplate": "%{text}",
                  "colorscale": "RdBu", "zmid": 0, "colorbar": {"title": {"text": "Z"}}}],
        "layout": {"title": {"text": "Task affinity Z(source → target): > 0 a step on the source lowers the "
                                     "target's loss"},
                   "xaxis": {"title": {"text": "target task"}},
                   "yaxis": {"title": {"text": "source task (the lookahead step)"}, "autorange": "reversed"}},
    }
