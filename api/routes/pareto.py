"""``/api/v1/studies/{id}/pareto``: the Pareto front of a study (``/best`` answers with it on a multi-objective one).

The document itself (``ParetoPublic``) is built in ``tuner.analysis.pareto``, shared with the dashboard and the CLI.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import OwnedStudy, StoreDep
from api.errors import error_responses
from tuner.analysis.pareto import ParetoPublic, pareto_public

router = APIRouter(prefix="/studies", tags=["studies"])

__all__ = ["ParetoPublic", "pareto_public", "router"]


@router.get("/{study_id}/pareto", response_model=ParetoPublic, responses=error_responses(401, 403, 404, 422))
def read_pareto(study: OwnedStudy, store: StoreDep) -> ParetoPublic:
    """The Pareto front: the complete trials no other complete trial beats on every objective (on a
    single-objective study, the best trial and its ties); empty while no trial has completed."""
    return pareto_public(store, study)
