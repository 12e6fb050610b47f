"""Plotly figures of the λ search: parallel coordinates, a slice per λ, contours for pairs, importance.

Scatter-like plots draw the sample of ``sampling.plot_sample``; the contours are aggregated on the server
(mean value per cell of a ``CELLS`` × ``CELLS`` grid over the λ bounds, from every complete trial), so their
size does not grow with the study.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from api.dashboard.figures import (
    ACCENT,
    Figure,
    axis,
    column,
    empty,
    grid_layout,
    lambda_column,
    layout,
    num,
    sample_note,
    text,
    to_json,
    trace,
)
from api.dashboard.importance import Importance
from api.dashboard.sampling import plot_sample
from api.dashboard.snapshot import LambdaDim, StudySnapshot
from storage import TrialPoint

CELLS = 20
#: Lines of the parallel-coordinates plot: it is drawn with WebGL, which is slow without a GPU (headless
#: browsers, remote desktops), and past a few hundred lines it is a blur anyway.
PARALLEL_LIMIT = 500
#: Contours are drawn for the pairs of the first ``CONTOUR_DIMS`` searched λ (6 pairs at most), with up to
#: ``CONTOUR_POINTS`` trials dotted on each, to show where the interpolation has data.
CONTOUR_DIMS = 4
CONTOUR_POINTS = 300
SLICE_COLS = 3


def _colorscale(snapshot: StudySnapshot) -> dict[str, object]:
    """Viridis with the best values bright, whichever the direction."""
    return {"colorscale": "Viridis", "reversescale": not snapshot.maximize}


def parallel_figure(snapshot: StudySnapshot) -> Figure:
    """One line per trial through its λ and its value."""
    title = "Parallel coordinates: λ → " + text(snapshot.metric)
    if not snapshot.dims or not snapshot.complete:
        return empty(title, "no complete trial yet" if snapshot.dims else "no λ is searched")
    sample = plot_sample(snapshot, PARALLEL_LIMIT)
    values = column([p.value for p in sample])
    dims = [{"label": f"λ {text(d.name)}", "range": [d.low, d.high], "values": lambda_column(sample, d)}
            for d in snapshot.dims]
    dims.append({"label": text(snapshot.metric), "values": values})
    fig = go.Figure(trace("parcoords", line={"color": values, "showscale": True, **_colorscale(snapshot)},
                          dimensions=dims, labelangle=0),
                    layout=layout(title + sample_note(len(sample), len(snapshot.complete)),
                                  margin={"l": 70, "r": 70, "t": 80, "b": 30}))
    return to_json(fig)


def slice_figure(snapshot: StudySnapshot) -> Figure:
    """Value against each λ (one panel per λ), coloured by trial number; the best trial starred."""
    title = "Slice: " + text(snapshot.metric) + " against each λ"
    if not snapshot.dims or not snapshot.complete:
        return empty(title, "no complete trial yet" if snapshot.dims else "no λ is searched")
    sample = plot_sample(snapshot)
    cols = min(SLICE_COLS, len(snapshot.dims))
    rows = math.ceil(len(snapshot.dims) / cols)
    fig = make_subplots(rows=rows, cols=cols, shared_yaxes=True, horizontal_spacing=0.04, vertical_spacing=0.18)
    best = snapshot.best
    values, numbers = column([p.value for p in sample]), column([p.number for p in sample], "i4")
    for i, dim in enumerate(snapshot.dims):
        row, col = i // cols + 1, i % cols + 1
        fig.add_trace(trace(
            "scatter", x=lambda_column(sample, dim), y=values, mode="markers", showlegend=False,
            marker={"size": 6, "color": numbers, "colorscale": "Blues", "opacity": 0.8, "showscale": i == 0,
                    "colorbar": {"title": {"text": "trial"}, "thickness": 12}}, customdata=numbers,
            hovertemplate=f"trial %{{customdata}}<br>λ {text(dim.name)} = %{{x:.3f}}<br>value %{{y:.4f}}"
                          "<extra></extra>"), row=row, col=col)
        if best is not None and isinstance(best.params.get(dim.name), int | float):
            fig.add_trace(trace("scatter", x=[num(float(best.params[dim.name]))], y=[num(best.value)],
                                mode="markers", name=f"best (trial {best.number})", showlegend=i == 0,
                                marker={"size": 14, "symbol": "star", "color": "#dc2626"},
                                hovertemplate=f"best: trial {best.number}<extra></extra>"), row=row, col=col)
        fig.update_xaxes(axis(f"λ {text(dim.name)}", type="log" if dim.log and dim.low > 0 else "linear"),
                         row=row, col=col)
    fig.update_yaxes(axis(), col=1)
    fig.update_yaxes(title_text=text(snapshot.metric), col=1)
    fig.update_layout(**grid_layout(title + sample_note(len(sample), len(snapshot.complete))), height=300 * rows + 60)
    return to_json(fig)


def _edges(dim: LambdaDim) -> list[float]:
    if dim.log and dim.low > 0 and dim.high > dim.low:
        lo, hi = math.log10(dim.low), math.log10(dim.high)
        return [10 ** (lo + (hi - lo) * i / CELLS) for i in range(CELLS + 1)]
    span = (dim.high - dim.low) or 1.0
    return [dim.low + span * i / CELLS for i in range(CELLS + 1)]


def _cell(edges: Sequence[float], x: float) -> int:
    for i in range(CELLS):
        if x < edges[i + 1]:
            return i
    return CELLS - 1


def contour_grid(points: Sequence[TrialPoint], a: LambdaDim, b: LambdaDim) -> list[list[float | None]]:
    """Mean value per grid cell (rows: ``b``, columns: ``a``), ``None`` where no trial fell."""
    ea, eb = _edges(a), _edges(b)
    sums = [[0.0] * CELLS for _ in range(CELLS)]
    counts = [[0] * CELLS for _ in range(CELLS)]
    for p in points:
        x, y = p.params.get(a.name), p.params.get(b.name)
        if not isinstance(x, int | float) or not isinstance(y, int | float) or p.value is None:
            continue
        i, j = _cell(eb, float(y)), _cell(ea, float(x))
        sums[i][j] += p.value
        counts[i][j] += 1
    return [[num(sums[i][j] / counts[i][j]) if counts[i][j] else None for j in range(CELLS)] for i in range(CELLS)]


def _centres(edges: Sequence[float]) -> list[float | None]:
    return [num((edges[i] + edges[i + 1]) / 2) for i in range(CELLS)]


def contour_figure(snapshot: StudySnapshot) -> Figure:
    """Mean value over each pair of λ (first ``CONTOUR_DIMS`` searched λ), with the best trial starred."""
    title = "Contour: mean " + text(snapshot.metric) + " over pairs of λ"
    dims = snapshot.dims[:CONTOUR_DIMS]
    if len(dims) < 2:
        return empty(title, "a contour needs two searched λ")
    if not snapshot.complete:
        return empty(title, "no complete trial yet")
    pairs = list(itertools.combinations(dims, 2))
    cols = min(3, len(pairs))
    rows = math.ceil(len(pairs) / cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.08, vertical_spacing=0.16)
    best = snapshot.best
    dotted = plot_sample(snapshot, CONTOUR_POINTS)
    for k, (a, b) in enumerate(pairs):
        row, col = k // cols + 1, k % cols + 1
        fig.add_trace(trace(
            "contour", x=_centres(_edges(a)), y=_centres(_edges(b)), z=contour_grid(snapshot.complete, a, b),
            connectgaps=True, coloraxis="coloraxis", line={"width": 0.5}, name=f"{text(a.name)} × {text(b.name)}",
            hovertemplate=f"λ {text(a.name)} %{{x:.3f}}<br>λ {text(b.name)} %{{y:.3f}}<br>mean %{{z:.4f}}"
                          "<extra></extra>"), row=row, col=col)
        fig.add_trace(trace("scatter", x=lambda_column(dotted, a), y=lambda_column(dotted, b), mode="markers",
                            showlegend=k == 0, name="trials", hoverinfo="skip",
                            marker={"size": 3, "color": "rgba(255,255,255,0.7)",
                                    "line": {"color": "rgba(17,24,39,0.5)", "width": 0.5}}), row=row, col=col)
        if best is not None:
            fig.add_trace(trace("scatter", x=[num(_param(best, a))], y=[num(_param(best, b))], mode="markers",
                                showlegend=k == 0, name=f"best (trial {best.number})",
                                marker={"size": 13, "symbol": "star", "color": "#dc2626",
                                        "line": {"color": "white", "width": 1}}), row=row, col=col)
        fig.update_xaxes(axis(f"λ {text(a.name)}", range=[a.low, a.high]), row=row, col=col)
        fig.update_yaxes(axis(f"λ {text(b.name)}", range=[b.low, b.high]), row=row, col=col)
    more = f" (first {CONTOUR_DIMS} λ)" if len(snapshot.dims) > CONTOUR_DIMS else ""
    fig.update_layout(**grid_layout(title + more),
                      coloraxis={**_colorscale(snapshot), "colorbar": {"title": {"text": "mean"}, "thickness": 12}},
                      height=320 * rows + 40)
    return to_json(fig)


def _param(point: TrialPoint, dim: LambdaDim) -> float | None:
    value = point.params.get(dim.name)
    return float(value) if isinstance(value, int | float) else None


def importance_figure(importance: Importance) -> Figure:
    """Horizontal bars, most important λ on top."""
    title = "λ importance (fANOVA)"
    if importance.values is None:
        return empty(title, importance.reason)
    ranked = sorted(importance.values.items(), key=lambda kv: kv[1])
    fig = go.Figure(trace("bar", x=[num(v) for _, v in ranked], y=[f"λ {text(k)}" for k, _ in ranked],
                          orientation="h", marker={"color": ACCENT}, hovertemplate="%{y}: %{x:.3f}<extra></extra>"),
                    layout=layout(f"{title}, from {importance.n_trials} complete trials",
                                  xaxis=axis("share of the value's variance", range=[0, 1]), yaxis=axis(),
                                  height=max(220, 60 + 40 * len(ranked))))
    return to_json(fig)

