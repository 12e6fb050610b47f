"""Plotly figures of a study over time: optimisation history and per-trial curves, and the shared style.

Figures are built with ``plotly.graph_objects`` and leave as plotly JSON (``fig.to_plotly_json()``), which the
dashboard draws with ``Plotly.react`` and the report embeds; the λ plots are in ``lambda_figures``. Every text
that comes from a user (aux task names) is HTML-escaped: plotly renders a subset of HTML in labels.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from api.dashboard.sampling import improvements, plot_sample
from api.dashboard.snapshot import BASELINE, LambdaDim, StudySnapshot
from storage import EpochRecord, TrialPoint

Figure = dict[str, Any]

ACCENT, MUTED, GRID = "#2563eb", "#94a3b8", "#e5e7eb"
CONTROL_STYLE = {BASELINE: ("star", "#dc2626"), "λ=1": ("diamond", "#d97706")}
PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#4b5563",
           "#b45309")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
MAIN = "main"


def text(value: object) -> str:
    """A user's string made safe for plotly labels (which render a subset of HTML)."""
    return html.escape(str(value), quote=False)


def num(value: float | None) -> float | None:
    """``value`` with 6 significant digits (smaller JSON, same picture); ``None`` for missing or non-finite."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


def column(values: Sequence[float | None], dtype: str = "f4") -> np.ndarray:
    """A data column for a trace (missing → NaN, a gap). Plotly sends numpy arrays as base64 typed arrays:
    ~5 bytes a value in float32, and validated without copying every element (lists of 1 500 points were the
    slowest part of a 10 000-trial study's first answer)."""
    return np.asarray([math.nan if v is None else v for v in values], dtype=dtype)


def axis(title: str = "", **extra: Any) -> dict[str, Any]:
    """An axis in the dashboard's style, titled ``title`` (already safe text)."""
    return {"gridcolor": GRID, "zerolinecolor": GRID, "linecolor": "#9ca3af", "automargin": True,
            **({"title": {"text": title}} if title else {}), **extra}


def layout(title: str, **extra: Any) -> dict[str, Any]:
    """The dashboard's plain style (no plotly template: it would add ~10 kB to every figure)."""
    base: dict[str, Any] = {
        "template": "none", "title": {"text": title, "x": 0.01, "font": {"size": 14}},
        "font": {"family": "system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 12, "color": "#111827"},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "paper_bgcolor": "white", "plot_bgcolor": "white",
        "xaxis": axis(), "yaxis": axis(), "hovermode": "closest",
        "legend": {"orientation": "h", "x": 0, "y": -0.25, "yanchor": "top"},
    }
    base.update(extra)
    return base


def grid_layout(title: str, **extra: Any) -> dict[str, Any]:
    """``layout`` for a figure of subplots, whose axes ``make_subplots`` lays out itself."""
    return {k: v for k, v in layout(title, **extra).items() if not k.endswith("axis")}


def trace(kind: str, **props: Any) -> dict[str, Any]:
    """A trace as a dict (``trace("scatter", x=…)``): plotly validates it as it does ``go.Scatter(x=…)``, in a
    fraction of the time."""
    return {"type": kind, **props}


def to_json(fig: go.Figure) -> Figure:
    return fig.to_plotly_json()  # type: ignore[no-any-return]


def empty(title: str, message: str) -> Figure:
    """A figure with nothing to plot yet, saying why."""
    fig = go.Figure(layout=layout(title, xaxis={"visible": False}, yaxis={"visible": False}))
    fig.add_annotation(text=text(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"color": "#6b7280", "size": 13})
    return to_json(fig)


def lambda_hover(dims: Sequence[LambdaDim], first: int = 0) -> str:
    """Hover lines for the λ held in ``customdata[first:]``."""
    return "".join(f"<br>λ {text(d.name)} = %{{customdata[{first + i}]:.3f}}" for i, d in enumerate(dims))


def lambda_column(points: Sequence[TrialPoint], dim: LambdaDim) -> np.ndarray:
    """λ ``dim`` of each trial (NaN where a trial lacks it)."""
    return column([_float(p.params.get(dim.name)) for p in points])


def lambda_data(points: Sequence[TrialPoint], dims: Sequence[LambdaDim]) -> np.ndarray:
    """``customdata`` rows: the λ of each trial, one column per searched λ."""
    return np.stack([lambda_column(points, d) for d in dims], axis=1) if dims else np.zeros((len(points), 0))


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def sample_note(shown: int, total: int) -> str:
    return f" · {shown} of {total} drawn (sampled)" if shown < total else ""


def history_figure(snapshot: StudySnapshot) -> Figure:
    """Value per trial, the best-so-far line, and the controls (λ = 0 baseline, λ = 1) marked and ruled."""
    title = f"Optimisation history: {text(snapshot.metric)} per trial"
    complete = snapshot.complete
    if not complete:
        return empty(title, "no trial has completed yet")
    sample = plot_sample(snapshot)
    fig = go.Figure(layout=layout(title + sample_note(len(sample), len(complete)),
                                  xaxis=axis("trial"), yaxis=axis(text(snapshot.metric))))
    plain = [p for p in sample if p.number not in snapshot.controls]
    hover = "trial %{x}<br>" + text(snapshot.metric) + " %{y:.4f}" + lambda_hover(snapshot.dims) + "<extra></extra>"
    fig.add_trace(trace("scatter", x=column([p.number for p in plain], "i4"), y=column([p.value for p in plain]),
                        mode="markers", name="trial", marker={"size": 6, "color": MUTED, "opacity": 0.75},
                        customdata=lambda_data(plain, snapshot.dims), hovertemplate=hover))
    steps = improvements(snapshot)
    last = snapshot.points[-1].number
    fig.add_trace(trace("scatter", x=[p.number for p in steps] + [last],
                        y=[num(p.value) for p in steps] + [num(steps[-1].value)], mode="lines+markers",
                        line={"shape": "hv", "color": ACCENT, "width": 2}, marker={"size": 5, "color": ACCENT},
                        name="best so far", hovertemplate="best so far after trial %{x}: %{y:.4f}<extra></extra>"))
    by_number = {p.number: p for p in complete}
    for number, label in sorted(snapshot.controls.items()):
        point = by_number.get(number)
        if point is None:
            continue
        symbol, color = CONTROL_STYLE.get(label, ("square", "#111827"))
        fig.add_trace(trace("scatter", x=[number], y=[num(point.value)], mode="markers",
                            name=f"{label} (trial {number})", customdata=lambda_data([point], snapshot.dims),
                            marker={"size": 14, "symbol": symbol, "color": color,
                                    "line": {"width": 1, "color": "white"}}, hovertemplate=hover))
        fig.add_hline(y=num(point.value), line={"dash": "dot", "color": color, "width": 1},
                      annotation_text=f"{label}: {point.value:.4g}", annotation_position="top left",
                      annotation_font={"color": color, "size": 11})
    return to_json(fig)


def curves_figure(snapshot: StudySnapshot, epochs: Mapping[int, list[EpochRecord]]) -> Figure:
    """Train/val loss of every task and the main task's val accuracy per epoch, one colour per trial (overlaid),
    one dash style per task (main solid)."""
    title = "Per-trial curves"
    if not any(epochs.values()):
        return empty(title, "the selected trials have no epoch yet" if epochs else "select trials in the table")
    fig = make_subplots(rows=1, cols=3, subplot_titles=("train loss per task", "val loss per task",
                                                        "val accuracy (main task)"), horizontal_spacing=0.07)
    tasks = sorted({t for records in epochs.values() for r in records
                    for key in ("train_loss", "val_loss") if isinstance(r.metrics.get(key), dict)
                    for t in r.metrics[key]}, key=lambda t: (t != MAIN, t))
    dash = {t: DASHES[i % len(DASHES)] for i, t in enumerate(tasks)}
    for i, (number, records) in enumerate(sorted(epochs.items())):
        color = PALETTE[i % len(PALETTE)]
        label = f"#{number}" + (f" ({snapshot.controls[number]})" if number in snapshot.controls else "")
        x = [r.epoch for r in records]
        shown = False
        for col, key in ((1, "train_loss"), (2, "val_loss")):
            for task in tasks:
                y = [num(_float((r.metrics.get(key) or {}).get(task))) for r in records]
                if all(v is None for v in y):
                    continue
                fig.add_trace(trace(
                    "scatter", x=x, y=y, mode="lines", name=f"{label} {text(task)}", legendgroup=str(number),
                    showlegend=col == 1, line={"color": color, "dash": dash[task], "width": 1.6},
                    hovertemplate=f"{label} {text(task)} {key.replace('_', ' ')}<br>epoch %{{x}}: %{{y:.4f}}"
                                  "<extra></extra>"), row=1, col=col)
                shown = True
        acc = [num(_float(r.metrics.get("val_accuracy"))) for r in records]
        fig.add_trace(trace("scatter", x=x, y=acc, mode="lines+markers", name=f"{label} accuracy",
                            legendgroup=str(number), showlegend=not shown, line={"color": color, "width": 1.6},
                            marker={"size": 4},
                            hovertemplate=f"{label} val accuracy<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>"),
                      row=1, col=3)
    longest = max(len(records) for records in epochs.values())
    fig.update_layout(**grid_layout(title, margin={"l": 60, "r": 20, "t": 80, "b": 50}), height=400)
    fig.update_xaxes(title_text="epoch", gridcolor=GRID, zerolinecolor=GRID, dtick=max(1, round(longest / 10)))
    fig.update_yaxes(gridcolor=GRID, zerolinecolor=GRID)
    return to_json(fig)
