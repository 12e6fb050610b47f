"""Where ``status``, ``best``, ``report``, ``confirm`` and ``affinity`` read a study: the local store or a service.

Each of those commands is written once against a ``StudySource``: ``LocalSource`` builds from the store the
documents the REST API answers (``tuner.analysis.documents``, the confirmation and affinity reports),
``RemoteSource`` asks a service for them over HTTP (``api.client``). ``study_source`` picks one from ``--url`` and
``--db``. A refusal exits as the local command does: bad input and 4xx exit 2; no result yet (409) exits 1; a
server error (5xx) exits 1; an unreachable server exits 2 (check --url).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tuner.cli.common import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, console, err_console, existing_store, fail, find_study
from tuner.cli.options import LEASE_TIMEOUT_S
from tuner.spec import primary_metric

if TYPE_CHECKING:
    from api.client import ApiError, AuxtuneClient
    from storage import Store, StudyRecord


class StudySource(Protocol):
    """A study's documents by its name or id, from wherever the command was pointed."""

    #: What to add to an ``auxtune`` command line in a hint so it reads the same place (`` --url URL``, or "").
    flags: str

    def status(self, study: str) -> dict[str, Any]:
        """The study as ``GET /studies/{id}`` answers it: name, id, status, counts, best so far, warning, …"""

    def best(self, study: str) -> tuple[str, dict[str, Any], str | None]:
        """The study's name, its ``/best`` document, and the confirmation's verdict line once one was queued."""

    def report(self, study: str) -> str:
        """The study's self-contained HTML report."""

    def confirm(self, study: str, options: dict[str, Any], workers: int) -> dict[str, Any]:
        """Queue the study's confirmation (``options``: ``request_confirmation``'s keywords, e.g. ``seeds``,
        ``ablate``), wait for its runs, and return its report."""

    def affinity(self, study: str) -> tuple[str, dict[str, Any]]:
        """The study's name and its task-affinity report (without the figure)."""


@contextmanager
def study_source(url: str | None, token: str | None, db: str | None) -> Iterator[StudySource]:
    """The service at ``url`` (``--db`` refused beside it), else the existing store at ``db``."""
    if url is None:
        yield LocalSource(existing_store(db))
        return
    from api.client import ApiError

    if db is not None:
        raise fail(["give --url (a service) or --db (a store), not both"])
    with open_client(url, token) as client:
        try:
            yield RemoteSource(client, url)
        except ApiError as exc:
            raise api_fail(exc) from None


def api_fail(exc: ApiError) -> typer.Exit:
    """The exit for a refusal or failure of the service, each of its lines printed."""
    if exc.status == 409 and "no_result_yet" in exc.types:
        code = EXIT_CHECK_FAILED
    elif exc.status is not None and exc.status >= 500:
        code = EXIT_CHECK_FAILED
    else:
        code = EXIT_BAD_INPUT
    return fail([escape(line) for line in exc.messages], code)


def open_client(url: str, token: str | None) -> AuxtuneClient:
    """A client of the service at ``url``; a URL it cannot use exits 2."""
    from api.client import ApiError, AuxtuneClient

    try:
        return AuxtuneClient(url, token=token)
    except ApiError as exc:
        raise api_fail(exc) from None


@contextlib.contextmanager
def _runs_bar(total: int) -> Iterator[Callable[[int], None]]:
    """A bar of the confirmation runs finished out of ``total``; yields the function that moves it."""
    with Progress(TextColumn("confirmation runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("runs", total=total)
        yield lambda done: bar.update(task, completed=done)


def _follow_runs(total: int, finished: Callable[[], int | None], poll_s: float) -> None:
    """The runs bar, read every ``poll_s`` by ``finished`` (None once there is nothing more to wait for)."""
    with _runs_bar(total) as show:
        while (done := finished()) is not None:
            show(done)
            time.sleep(poll_s)


def confirm_with_workers(store: Store, study: StudyRecord, workers: int, options: dict[str, Any] | None = None,
                         lease_timeout_s: float = LEASE_TIMEOUT_S) -> dict[str, Any]:
    """Queue the confirmation of ``study`` (``options``: ``request_confirmation``'s keywords) and run its
    unfinished runs, later rounds of ``seeds: auto`` included, with local worker processes.

    Resumable: runs already stored complete are kept. Returns the report.
    """
    from tuner.analysis.confirm import confirmation_report, request_confirmation
    from tuner.execution.local import run_workers

    runs = request_confirmation(store, study, **(options or {}))
    if any(r.state in ("queued", "running") for r in runs):
        with _runs_bar(len(runs)) as show:
            def poll() -> None:
                counts = store.run_counts(study.id)
                show(counts["complete"] + counts["failed"])

            run_workers(store.url, study.name, workers, poll, lease_timeout_s=lease_timeout_s, poll_s=0.5)
    return confirmation_report(store.get_study(study.id), store.runs(study.id))


class LocalSource:
    """The documents built from the store, as the service would answer them."""

    flags = ""

    def __init__(self, store: Store) -> None:
        self.store = store

    def status(self, study: str) -> dict[str, Any]:
        """The study as ``GET /studies/{id}`` answers it, with every worker as ``GET /workers`` lists it."""
        from api.config import Settings
        from api.views import worker_public
        from tuner.analysis.documents import study_status
        from tuner.execution.liveness import no_worker_warning

        record = find_study(self.store, study)
        metric = primary_metric(record.spec)
        alive_s = Settings().worker_alive_s  # the service's window for a live one
        workers = [worker_public(w, alive_s).model_dump(mode="json") for w in self.store.workers()]
        alive = sum(w["alive"] for w in workers)
        return {"name": record.name, "id": record.id, "status": record.status, "status_reason": record.status_reason,
                "n_trials": record.n_trials, "metric": metric, "direction": record.direction,
                **study_status(self.store, record), "warning": no_worker_warning(record.status, alive),
                "workers": workers}

    def best(self, study: str) -> tuple[str, dict[str, Any], str | None]:
        from tuner.analysis.confirm import ablation_lines, stored_confirmation, verdict_line
        from tuner.analysis.documents import best_document

        record = find_study(self.store, study)
        doc = best_document(self.store, record)
        if doc is None:
            raise fail([f"study {record.name!r} has no finished trial yet; wait for one, or run it"],
                       EXIT_CHECK_FAILED)
        report = stored_confirmation(self.store, record) if "confirmation" in doc else None
        return record.name, doc, None if report is None else "\n".join([verdict_line(report), *ablation_lines(report)])

    def report(self, study: str) -> str:
        from api.dashboard import report_html

        return report_html(self.store, find_study(self.store, study))

    def confirm(self, study: str, options: dict[str, Any], workers: int) -> dict[str, Any]:
        from tuner.analysis.confirm import ConfirmError

        record = find_study(self.store, study)
        try:
            return confirm_with_workers(self.store, record, workers, options)
        except ConfirmError as exc:
            raise fail([str(exc)], EXIT_CHECK_FAILED) from None
        except KeyboardInterrupt:
            err_console.print("stopped: running runs went back to the queue; run the same command to resume")
            raise typer.Exit(130) from None

    def affinity(self, study: str) -> tuple[str, dict[str, Any]]:
        from tuner.analysis.affinity_report import study_affinity

        record = find_study(self.store, study)
        report = study_affinity(self.store, record)
        if report is None:
            raise fail([f"no trial of {record.name!r} measured task affinity yet (affinity.every: 0 turns the probe "
                        "off)"], EXIT_CHECK_FAILED)
        return record.name, report


class RemoteSource:
    """The documents as a service answers them (``study_source`` turns its refusals into exits)."""

    def __init__(self, client: AuxtuneClient, url: str) -> None:
        self.client, self.flags = client, f" --url {url}"

    def status(self, study: str) -> dict[str, Any]:
        """``GET /studies/{id}``, with ``GET /workers``' list."""
        found = self.client.find_study(study)  # by id: the detail already; by name: a list entry
        detail = found if "counts" in found else self.client.study(found["id"])
        return {**detail, "workers": self.client.workers()["data"]}

    def best(self, study: str) -> tuple[str, dict[str, Any], str | None]:
        from tuner.analysis.confirm import ablation_lines, verdict_line

        found = self.client.find_study(study)
        doc = self.client.best(found["id"])
        report = self.client.confirmation(found["id"]) if "confirmation" in doc else None
        verdict = None if report is None else "\n".join([verdict_line(report), *ablation_lines(report)])
        return found["name"], doc, verdict

    def report(self, study: str) -> str:
        return self.client.report(self.client.find_study(study)["id"])

    def confirm(self, study: str, options: dict[str, Any], workers: int) -> dict[str, Any]:
        """The service's workers run the runs (``workers`` is for a local store); this follows them until done."""
        from api.client import ApiError

        study_id = self.client.find_study(study)["id"]
        try:
            report = self.client.confirm(study_id, **options)
        except ApiError as exc:
            if exc.status != 409:  # nothing to confirm yet (its search runs): as ConfirmError locally
                raise
            raise fail([escape(line) for line in exc.messages], EXIT_CHECK_FAILED) from None

        def finished() -> int | None:
            nonlocal report
            report = self.client.confirmation(study_id)
            return None if report["state"] == "complete" else report["counts"]["complete"] + report["counts"]["failed"]

        try:
            if report["state"] != "complete":
                _follow_runs(sum(report["counts"].values()), finished, 1.0)
        except KeyboardInterrupt:
            err_console.print("stopped following: the service's workers go on with the runs; run the same command "
                              "to follow them again")
            raise typer.Exit(130) from None
        for arm in report["arms"]:  # the API's schema gives every arm the key; the report has it on learned ones
            if arm.get("effective_lambdas") is None:
                arm.pop("effective_lambdas", None)
        return report

    def affinity(self, study: str) -> tuple[str, dict[str, Any]]:
        found = self.client.find_study(study)
        report = self.client.affinity(found["id"])
        report.pop("figure", None)  # the command prints the report, not the dashboard's heatmap
        return found["name"], report
