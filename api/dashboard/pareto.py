"""The Pareto panel of a multi-objective study: the front (as ``/best`` answers it) and its figure.

Built from a ``StudySnapshot``, whose ``objectives`` hold every complete trial's objective values: the front is
``storage.non_dominated`` over them and the document is ``tuner.analysis.pareto.pareto_document``'s, so the page, the
report and ``GET …/pareto`` always agree. A single-objective study has no panel (``pareto_panel`` is None) and
its page is unchanged.

The figure: with two objectives, every complete trial in the plane of the two, the front highlighted and joined
in order of the first objective; with three or more, a scatter matrix of the objectives with the front marked.
The dominated trials are sampled past ``PLOT_LIMIT`` (the front and the controls never are).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from api.dashboard.figures import (
    ACCENT,
    CONTROL_STYLE,
    MUTED,
    Figure,
    axis,
    column,
    empty,
    layout,
    sample_note,
    to_json,
    trace,
)
from api.dashboard.figures import text as safe
from api.dashboard.sampling import PLOT_LIMIT, spread
from api.dashboard.snapshot import LambdaDim, StudySnapshot
from storage import ParetoTrial, TrialPoint, non_dominated
from tuner.analysis.pareto import pareto_document

ARROW = {"maximize": "↑", "minimize": "↓"}


def front_numbers(snapshot: StudySnapshot) -> list[int]:
    """The numbers of the front's trials (memoised per snapshot)."""
    return snapshot.memo("front", lambda: non_dominated(snapshot.objectives, snapshot.study.directions))


def pareto_panel(snapshot: StudySnapshot) -> dict[str, Any] | None:
    """The front as ``/best`` answers it on this study (None on a single-objective study)."""
    if not snapshot.multi:
        return None
    params = {p.number: p.params for p in snapshot.points}
    front = [ParetoTrial(number=n, params=dict(params.get(n, {})), values=list(snapshot.objectives[n]))
             for n in front_numbers(snapshot)]
    return pareto_document(snapshot.study, front, len(snapshot.objectives)).model_dump(mode="json")


def _label(metric: str, direction: str) -> str:
    return f"{safe(metric)} {ARROW.get(direction, '')}"


def _points(snapshot: StudySnapshot, numbers: list[int]) -> list[TrialPoint]:
    by_number = {p.number: p for p in snapshot.points}
    return [by_number[n] for n in numbers if n in by_number]


def _hover(metrics: list[str], dims: list[LambdaDim]) -> str:
    """Hover lines for ``customdata`` rows [number, objective values…, λ…]."""
    lines = "".join(f"<br>{safe(m)} = %{{customdata[{1 + i}]:.4g}}" for i, m in enumerate(metrics))
    lams = "".join(f"<br>λ {safe(d.name)} = %{{customdata[{1 + len(metrics) + i}]:.3f}}" for i, d in enumerate(dims))
    return "trial %{customdata[0]}" + lines + lams + "<extra></extra>"


def _custom(snapshot: StudySnapshot, numbers: list[int]) -> np.ndarray:
    params = {p.number: p.params for p in snapshot.points}
    rows = [[float(n), *snapshot.objectives[n],
             *(float(v) if isinstance(v := params.get(n, {}).get(d.name), int | float) else np.nan
               for d in snapshot.dims)] for n in numbers]
    return np.asarray(rows, dtype="f8").reshape(len(numbers), 1 + len(snapshot.study.directions) + len(snapshot.dims))


def pareto_figure(snapshot: StudySnapshot, metrics: list[str]) -> Figure:
    """The front among every complete trial (see the module's docstring)."""
    directions = snapshot.study.directions
    title = "Pareto front: " + " vs ".join(_label(m, d) for m, d in zip(metrics, directions, strict=True))
    if not snapshot.objectives:
        return empty(title, "no trial has completed yet")
    front = front_numbers(snapshot)
    on_front = set(front)
    keep = {*on_front, *snapshot.controls}
    shown = [p.number for p in spread(_points(snapshot, sorted(snapshot.objectives)), keep, PLOT_LIMIT)
             if p.number in snapshot.objectives]
    others = [n for n in shown if n not in on_front]
    hover = _hover(metrics, snapshot.dims)
    title += sample_note(len(shown), len(snapshot.objectives))
    if len(metrics) == 2:
        front = sorted(front, key=lambda n: (snapshot.objectives[n][0], snapshot.objectives[n][1]))
        data = [trace("scatter", x=column([snapshot.objectives[n][0] for n in others]),
                      y=column([snapshot.objectives[n][1] for n in others]), mode="markers", name="dominated trial",
                      marker={"size": 6, "color": MUTED, "opacity": 0.7}, customdata=_custom(snapshot, others),
                      hovertemplate=hover),
                trace("scatter", x=column([snapshot.objectives[n][0] for n in front]),
                      y=column([snapshot.objectives[n][1] for n in front]), mode="lines+markers",
                      name=f"Pareto front ({len(front)})", line={"color": ACCENT, "width": 2},
                      marker={"size": 9, "color": ACCENT, "line": {"width": 1, "color": "white"}},
                      customdata=_custom(snapshot, front), hovertemplate=hover)]
        for number, label in sorted(snapshot.controls.items()):
            if number in snapshot.objectives:
                symbol, color = CONTROL_STYLE.get(label, ("square", "#111827"))
                data.append(trace("scatter", x=[snapshot.objectives[number][0]], y=[snapshot.objectives[number][1]],
                                  mode="markers", name=f"{label} (trial {number})",
                                  marker={"size": 13, "symbol": symbol, "color": color,
                                          "line": {"width": 1, "color": "white"}},
                                  customdata=_custom(snapshot, [number]), hovertemplate=hover))
        return to_json(go.Figure(data=data, layout=layout(title, xaxis=axis(_label(metrics[0], directions[0])),
                                           yaxis=axis(_label(metrics[1], directions[1])))))
    dims = [{"label": _label(m, d)} for m, d in zip(metrics, directions, strict=True)]

    def splom(numbers: list[int], name: str, marker: dict[str, Any]) -> dict[str, Any]:
        return trace("splom", name=name, marker=marker, customdata=_custom(snapshot, numbers), hovertemplate=hover,
                     showupperhalf=False, diagonal={"visible": False},
                     dimensions=[{**dim, "values": column([snapshot.objectives[n][i] for n in numbers])}
                                 for i, dim in enumerate(dims)])

    data = [splom(others, "dominated trial", {"size": 5, "color": MUTED, "opacity": 0.7}),
            splom(front, f"Pareto front ({len(front)})", {"size": 8, "color": ACCENT})]
    size = {"height": 220 * len(metrics), "margin": {"l": 70, "r": 20, "t": 60, "b": 60}}
    return to_json(go.Figure(data=data, layout=layout(title, **size)))
