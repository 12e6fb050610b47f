"""``auxtune confirm`` and ``auxtune affinity``: trust the answer of a study (issue #7), from the local store.

Registered on the main app by ``tuner.cli`` (``register(app)``); the shared helpers (``_store``, ``_study``,
``_fail``, ``console``) are taken from ``tuner.cli`` when a command runs, and the engine (store, statistics) is
imported there too, so ``auxtune`` starts as fast as before for every other command.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

if TYPE_CHECKING:
    from storage import Store, StudyRecord

DbOption = Annotated[str | None, typer.Option("--db", help="store URL (default: $AUXTUNE_DB or sqlite:///./auxtune.db)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print as JSON")]


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "" if value is None else format(value, spec)


def _mean_std(summary: dict[str, Any]) -> str:
    if summary["mean"] is None:
        return ""
    return f"{summary['mean']:.4f} ± {_fmt(summary['std'])}" if summary["std"] is not None else f"{summary['mean']:.4f}"


def _params(arm: dict[str, Any]) -> str:
    if arm["kind"] == "weighting":
        learned = arm.get("effective_lambdas") or {}
        return "learned, mean effective λ " + ", ".join(f"{k}={v:.3g}" for k, v in learned.items())
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, int | float) else f"{k}={v}" for k, v in arm["params"].items())


def show_confirmation(report: dict[str, Any]) -> None:
    """Print a confirmation report: arms, comparisons, the verdict, and the most changed confusions."""
    from tuner.analysis.confirm import verdict_line
    from tuner.cli.main import console

    arms = Table(title=f"confirmation of {report['study']} ({report['state']}, {report['seeds']} seeds per arm)")
    for col in ("arm", "λ", "runs", f"{report['val_metric']}", f"{report['metric']}"):
        arms.add_column(col)
    for a in report["arms"]:
        c = a["counts"]
        runs = f"{c['complete']}/{a['seeds']}" + (f" ({c['failed']} failed)" if c["failed"] else "")
        arms.add_row(a["arm"], _params(a), runs, _mean_std(a["val"]), _mean_std(a["test"]))
    console.print(arms)
    table = Table(title=f"differences on {report['metric']} (arm − reference, Welch's t-test, α = {report['alpha']})")
    for col in ("arm", "vs", "difference", "95 % CI", "p", "verdict"):
        table.add_column(col)
    for c in report["comparisons"]:
        t = c["test"]
        ci = f"{_fmt(t['ci_low'], '+.4f')} … {_fmt(t['ci_high'], '+.4f')}" if t["ci_low"] is not None else ""
        table.add_row(c["arm"], c["against"], _fmt(t["difference"], "+.4f"), ci, _fmt(t["p_value"], ".3g"),
                      t["verdict"] or "")
    console.print(table)
    errors = report.get("error_analysis")
    if errors and errors["pairs"]:
        pairs = Table(title="confusions that changed most on the test split (share of the true class)")
        for col in ("true", "predicted as", "baseline", "best", "change"):
            pairs.add_column(col)
        for p in errors["pairs"]:
            pairs.add_row(p["true"], p["predicted"], f"{p['baseline']:.1%}", f"{p['best']:.1%}", f"{p['change']:+.1%}")
        console.print(pairs)
    console.print(verdict_line(report), highlight=False, soft_wrap=True)


def confirm_with_workers(store: Store, study: StudyRecord, workers: int, seeds: int | None = None,
                         top_k: int | None = None, lease_timeout_s: float = 60.0) -> dict[str, Any]:
    """Queue the confirmation of ``study`` and run its unfinished runs with local worker processes.

    Resumable: runs already stored complete are kept. Returns the report.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tuner.analysis.confirm import confirmation_report, request_confirmation
    from tuner.cli.main import console
    from tuner.execution.local import start_workers, stop_workers

    runs = request_confirmation(store, study, seeds, top_k)
    if any(r.state in ("queued", "running") for r in runs):
        procs = start_workers(store.url, workers, "--study", study.name, "--lease-timeout", str(lease_timeout_s))
        with Progress(TextColumn("confirmation runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("runs", total=len(runs))
            try:
                while any(p.poll() is None for p in procs):
                    counts = store.run_counts(study.id)
                    bar.update(task, completed=counts["complete"] + counts["failed"])
                    time.sleep(0.5)
            except KeyboardInterrupt:
                stop_workers(procs)
                raise
    return confirmation_report(store.get_study(study.id), store.runs(study.id))


def confirm(
    name: Annotated[str, typer.Argument(help="study name or id")],
    seeds: Annotated[int | None, typer.Option(min=2, max=1000, help="seeds per arm (default: the spec's, else 10)")]
    = None,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", min=1, max=20, help="how many of the best λ sets to retrain (default: the spec's, else 1)")] = None,
    db: DbOption = None,
    workers: Annotated[int, typer.Option(min=1, help="local worker processes")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Retrain the best λ set and the λ = 0 baseline over fresh seeds and say whether best really is better."""
    from tuner.analysis.confirm import ConfirmError
    from tuner.cli.main import EXIT_CHECK_FAILED, _existing_store, _fail, _study, err_console

    store = _existing_store(db)
    study = _study(store, name)
    try:
        report = confirm_with_workers(store, study, workers, seeds, top_k)
    except ConfirmError as exc:
        raise _fail([str(exc)], EXIT_CHECK_FAILED) from None
    except KeyboardInterrupt:
        err_console.print("stopped: running runs went back to the queue; run the same command to resume")
        raise typer.Exit(130) from None
    if as_json:
        from api.dashboard.trust_figures import confirmation_document

        print(json.dumps(confirmation_document(report)))  # the document GET …/confirmation sends
    else:
        show_confirmation(report)
    if report["state"] != "complete":
        raise _fail([f"{report['counts']['queued'] + report['counts']['running']} run(s) unfinished (see the "
                     "workers' log lines above); run the same command to resume"], EXIT_CHECK_FAILED)


def affinity(
    name: Annotated[str, typer.Argument(help="study name or id")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Task affinity of a study's aux tasks to the main task (TAG lookahead), and which ones to drop."""
    from tuner.analysis.affinity_report import affinity_report
    from tuner.cli.main import EXIT_CHECK_FAILED, _existing_store, _fail, _study, console

    store = _existing_store(db)
    study = _study(store, name)
    report = affinity_report(store.trials(study.id, limit=100000))
    if report is None:
        raise _fail([f"no trial of {study.name!r} measured task affinity yet (affinity.every: 0 turns the probe "
                     "off)"], EXIT_CHECK_FAILED)
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=f"task affinity to the main task in {study.name} (mean over trials that trained the task)")
    for col in ("aux task", "affinity", "std", "trials", "negative in", "advice"):
        table.add_column(col)
    for row in report["summary"]:
        table.add_row(row["task"], _fmt(row["affinity"], "+.3g"), _fmt(row["std"], ".2g"), str(row["trials"]),
                      str(row["negative_in"]), row["advice"] or "")
    console.print(table)
    for line in report["advice"]:
        console.print(line, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``confirm`` and ``affinity`` to the ``auxtune`` command line."""
    app.command()(confirm)
    app.command()(affinity)


def confirm_after_run(store: Store, study: StudyRecord, workers: int, lease_timeout_s: float) -> None:
    """``auxtune run``'s last step for a spec with a ``confirm`` block or ``arms``: the confirmation (its runs
    mostly ran already: the workers take them once the trials are done), then its report."""
    from tuner.analysis.confirm import ConfirmError, wants_confirmation
    from tuner.cli.main import EXIT_CHECK_FAILED, _fail
    from tuner.spec import stored_spec

    if not wants_confirmation(stored_spec(study.spec)):
        return
    try:
        report = confirm_with_workers(store, study, workers, lease_timeout_s=lease_timeout_s)
    except ConfirmError as exc:
        raise _fail([f"confirmation: {exc}"], EXIT_CHECK_FAILED) from None
    show_confirmation(report)
    if report["state"] != "complete":
        raise _fail(["confirmation runs unfinished; run `auxtune confirm` on the study to resume"], EXIT_CHECK_FAILED)


def confirmation_for_best(store: Store, study: StudyRecord) -> tuple[dict[str, Any] | None, str | None]:
    """What ``auxtune best`` adds once a confirmation was queued: its summary (for --json) and verdict line."""
    from tuner.analysis.confirm import confirmation_summary, stored_confirmation, verdict_line

    report = stored_confirmation(store, study)
    if report is None:
        return None, None
    return confirmation_summary(report), verdict_line(report)
