"""One self-contained HTML file of a study, for sharing: plotly.js inlined, the same figures as the dashboard.

``GET /api/v1/studies/{id}/report.html`` and ``auxtune report NAME -o report.html`` both call ``report_html``.
The file loads nothing from anywhere (its own Content-Security-Policy says so when served), so it opens
offline, from a mail attachment or a shared drive. It holds the summary, the best λ, the controls, the
sanity-gate panel, the trust panel (confirmation or how to ask for one, task affinity, error analysis), on a
multi-objective study the Pareto front (its trials, how to pick one, its figure) instead of one best λ, every
figure (history, λ importance, parallel coordinates, slices, contours, curves of the controls and the best
trial, and the trust panel's), the ``TOP_TRIALS`` best trials and the spec.
"""

from __future__ import annotations

from datetime import UTC, datetime

import yaml

from api.dashboard.assets import plotly_js, render, script_json
from api.dashboard.importance import ImportanceCache
from api.dashboard.lambda_figures import importance_figure
from api.dashboard.payloads import curves, study_state, trials_page
from api.dashboard.snapshot import SnapshotCache
from storage import Store, StudyRecord

TOP_TRIALS = 50
#: A served report runs its own inline scripts and nothing else; it fetches nothing.
REPORT_CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
              "img-src data: blob:; font-src data:")


def report_html(store: Store, study: StudyRecord, snapshots: SnapshotCache | None = None,
                importance: ImportanceCache | None = None) -> str:
    """The report of ``study`` as one HTML document (≈5 MB, most of it plotly.js)."""
    snapshot = (snapshots or SnapshotCache(1)).get(store, study)
    state = study_state(snapshot)
    figures = {**state["figures"], "importance": importance_figure((importance or ImportanceCache()).get(snapshot)),
               "curves": curves(snapshot, store, None)["figure"]}
    table = trials_page(snapshot, store, sort="value", descending=snapshot.maximize, states=["complete"],
                        limit=TOP_TRIALS)
    return render("report.html", state=state, table=table, figures_json=script_json(figures), plotly_js=plotly_js(),
                  spec_text=yaml.safe_dump(snapshot.study.spec, sort_keys=False, allow_unicode=True),
                  generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
