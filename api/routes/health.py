"""``/healthz`` and ``/metrics`` (Prometheus text): public, outside ``/api/v1``, no study data."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from api.deps import SettingsDep, StoreDep
from api.schemas import Health
from api.views import worker_public
from storage import Store, StoreError
from storage.retry import call_with_retry

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: How long ``/healthz`` retries the store: a pooled connection the server dropped fails once, and a new one
#: answers at once; a database that cannot be reached keeps failing.
HEALTH_RETRY_S = 1.0


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def read_health(store: StoreDep) -> Health | JSONResponse:
    """200 when the store answers, 503 when it does not (the reason goes to the server log, not to anonymous
    callers: it names the database host). A dropped connection is retried first: the database is up."""
    try:
        call_with_retry(store.count_studies, budget_s=HEALTH_RETRY_S)
    except StoreError as e:
        logger.error("health check failed: %s", e)
        return JSONResponse(Health(status="unavailable", database="not answering; see the server log").model_dump(),
                            status_code=503)
    return Health(status="ok", database="ok")


@router.get("/metrics", response_class=PlainTextResponse)
def read_metrics(store: StoreDep, settings: SettingsDep) -> PlainTextResponse:
    """Trials by state, studies by status, queue depth, workers alive, in Prometheus' text format."""
    return PlainTextResponse(prometheus_text(store, settings.worker_alive_s), media_type=PROMETHEUS_CONTENT_TYPE)


def prometheus_text(store: Store, alive_s: float) -> str:
    workers = [worker_public(w, alive_s) for w in store.workers()]
    lines: list[str] = []

    def gauge(name: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.extend([f"# HELP {name} {help_}", f"# TYPE {name} gauge"])
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    gauge("auxtune_trials", "Trials in the store by state.",
          [(f'{{state="{s}"}}', n) for s, n in store.trial_counts().items()])
    gauge("auxtune_studies", "Studies by status.", [(f'{{status="{s}"}}', n) for s, n in store.study_counts().items()])
    gauge("auxtune_queue_depth", "Trials waiting for a worker in queued or running studies (queued + not yet "
          "sampled).", [("", store.queue_depth())])
    gauge("auxtune_workers_alive", f"Workers with a heartbeat in the last {alive_s:g} s (and, on this host, a "
          "live process).",
          [("", sum(w.alive for w in workers))])
    gauge("auxtune_workers_registered", "Workers ever registered in the store.", [("", len(workers))])
    return "\n".join(lines) + "\n"
