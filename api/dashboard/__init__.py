"""The dashboard: live study pages and a shareable report, built from the store with plotly figures.

``snapshot`` reads a study once per change; ``sampling`` picks what a plot draws at 10 000 trials;
``figures`` and ``lambda_figures`` build the plotly figures; ``trust`` the confirmation, affinity and error
analysis panel (its figures, also those of the REST documents: ``trust_figures``); ``pareto`` a multi-objective
study's front and its figure; ``importance`` runs fANOVA;
``payloads`` is the JSON the pages poll; ``report`` the self-contained HTML; ``assets`` the templates and
static files; ``spec_text`` reads a pasted YAML/JSON spec.
The routes are ``api.routes.dashboard`` (pages) and ``api.routes.dashboard_data`` (JSON, report).
"""

from api.dashboard.importance import ImportanceCache
from api.dashboard.report import report_html
from api.dashboard.snapshot import SnapshotCache, StudySnapshot

__all__ = ["ImportanceCache", "SnapshotCache", "StudySnapshot", "report_html"]
