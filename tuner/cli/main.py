"""The ``auxtune`` command line: check a spec, run one trial, list workloads (and, with the store, studies).

Exit codes: 0 success, 1 the set-up failed a check (sanity gate, trial), 2 bad input (spec, λ, arguments).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuner.cli import launch as cli_launch
from tuner.cli import pareto as cli_pareto
from tuner.cli import trust as cli_trust
from tuner.execution.exiting import exit_now
from tuner.spec import LambdaSpec, SpecError, StudySpec, load_spec, primary_metric, stored_spec
from tuner.spec.transfer import TRUNK_MODE_PARAM, lambda_params
from tuner.workloads import WorkloadError

if TYPE_CHECKING:
    from collections.abc import Callable

    from api.client import ApiError, AuxtuneClient
    from storage import Store, StudyRecord
    from tuner.engine.prepared import PreparedStudy
    from tuner.execution.local import Progress as RunProgress

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="auxtune: tune the loss weights λ of auxiliary tasks in multi-task networks.")
console = Console()
err_console = Console(stderr=True)

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


def _fail(lines: list[str], code: int = EXIT_BAD_INPUT) -> typer.Exit:
    for line in lines:
        err_console.print(f"[red]error:[/red] {line}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def _load(path: Path) -> StudySpec:
    try:
        return load_spec(path)
    except SpecError as exc:
        raise _fail(exc.lines()) from None


def _parse_lambdas(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise _fail([f"--lambda {item!r}: expected TASK=VALUE, e.g. --lambda ear=1.5"]) from None
    return out


ThreadsOption = Annotated[int | None, typer.Option(
    "--threads", help="torch CPU threads per worker (default: $AUXTUNE_THREADS, else 1); results are reproducible "
                      "at one thread count, not across counts")]


def _threads(threads: int | None) -> int | None:
    """``--threads`` checked now (and ``$AUXTUNE_THREADS`` with it), before any store or worker is started."""
    from tuner.engine.threads import ThreadsError, thread_count

    try:
        thread_count(threads)
    except ThreadsError as exc:
        raise _fail([str(exc)]) from None
    return threads


def _bounds(lam: LambdaSpec) -> str:
    if lam.fixed is not None:
        return f"fixed {lam.fixed}"
    return f"in [{lam.low}, {lam.high}]" + (" log" if lam.log else "")


def _prepare(spec: StudySpec, device: str | None) -> PreparedStudy:
    from tuner.engine.prepared import prepare

    try:
        return prepare(spec, device)
    except WorkloadError as exc:
        raise _fail([str(exc)]) from None


def _with_saved_models(spec: StudySpec, prep: PreparedStudy, db: str | None) -> PreparedStudy:
    """``prep`` with the saved trunk and kd teachers the spec names, checked against the store at ``db``."""
    from tuner.engine.transfer import with_saved_models
    from tuner.spec.references import check_references, saved_model_refs

    refs = saved_model_refs(spec)
    if not refs:
        return prep
    missing = _missing_store(db)
    if missing is not None:  # opening it would create an empty store, which cannot serve them
        field, ref = refs[0]
        raise _fail([f"{field}: {ref} names a saved model, but the store {missing} does not exist; "
                     "pass --db with the store that holds it (or set AUXTUNE_DB)"])
    store = _store(db)
    try:
        check_references(store, spec)
        return with_saved_models(prep, store)
    except SpecError as exc:
        raise _fail(exc.lines()) from None
    finally:
        store.close()


@app.command()
def validate(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="study spec, YAML or JSON")],
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: the spec's)")] = None,
    db: Annotated[str | None, typer.Option(
        "--db", help="store whose saved models the spec names (trunk.from_trial, kd teacher); "
                     "default: $AUXTUNE_DB or sqlite:///./auxtune.db")] = None,
) -> None:
    """Check a spec (and the saved models it names) and run the one-minibatch sanity gate at the default λ."""
    from tuner.engine.sanity import study_gate
    from tuner.search import make_backend

    spec = _load(spec_path)
    try:
        make_backend(spec)  # what ``run`` and the API refuse too: nothing to search, a grid too large, …
    except SpecError as exc:
        raise _fail(exc.lines()) from None
    prep = _with_saved_models(spec, _prepare(spec, device), db)
    lambdas, result = study_gate(prep, spec)
    data = prep.data
    console.print(f"spec [bold]{spec.name}[/bold]: workload {spec.workload.name}, "
                  f"{len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test samples, "
                  f"{data.n_classes} classes, input {data.input_shape}, device {prep.device}")
    console.print("aux tasks: " + (", ".join(f"{t.name} ({t.loss}, λ {_bounds(t.lambda_)})" for t in spec.aux_tasks)
                                   or "none"))
    console.print(f"search: {spec.search.algorithm}, {spec.search.n_trials} trials; "
                  f"objective: {spec.objective.metric} ({spec.objective.direction})")
    if result.passed:
        console.print(f"[green]sanity gate passed[/green] at λ={lambdas} in {result.steps} steps "
                      f"({result.seconds * 1000:.0f} ms): loss {result.initial_loss:.4g} → {result.final_loss:.4g}, "
                      f"main accuracy on the batch {result.main_accuracy:.0%}")
        return
    raise _fail([f"sanity gate failed at λ={lambdas}: {result.reason}"], EXIT_CHECK_FAILED)


@app.command()
def trial(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="study spec, YAML or JSON")],
    lambda_: Annotated[list[str] | None, typer.Option(
        "--lambda", "-l", help="TASK=VALUE; repeat per task. Unset tasks take their default λ.")] = None,
    seed: Annotated[int | None, typer.Option(help="trial seed (model init, batch order)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: the spec's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the final result as JSON")] = False,
    threads: ThreadsOption = None,
) -> None:
    """Run one full trial (sanity gate, then training) and print per-epoch, per-task figures."""
    from tuner.engine.callbacks import trial_callbacks
    from tuner.engine.callbacks.base import TrialCallback
    from tuner.engine.loop import run_trial
    from tuner.engine.threads import apply_thread_policy
    from tuner.results import EpochMetrics

    apply_thread_policy(_threads(threads))  # as a worker would run it: the same result at the same thread count
    spec = _load(spec_path)
    try:
        lambdas = spec.complete_lambdas(_parse_lambdas(lambda_ or []))
    except SpecError as exc:
        raise _fail(exc.lines()) from None
    prep = _with_saved_models(spec, _prepare(spec, device), None)  # $AUXTUNE_DB's saved trunk / teachers
    tasks = ["main", *[t.name for t in spec.aux_tasks]]
    out = err_console if as_json else console

    table = Table(title=f"{spec.name}: λ={lambdas}", show_lines=False)
    for col in ["ep", *[f"tr {t}" for t in tasks], *[f"va {t}" for t in tasks], "va acc"]:
        table.add_column(col, justify="right", no_wrap=True, overflow="ignore")
    table.caption = "losses per task, unweighted: tr = train, va = validation"

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=out, transient=True, refresh_per_second=2) as progress:
        bar = progress.add_task("training", total=spec.training.epochs)

        class _Show(TrialCallback):
            def on_epoch_end(self, m: EpochMetrics) -> None:
                table.add_row(str(m.epoch), *[f"{m.train_loss[t]:.3g}" for t in tasks],
                              *[f"{m.val_loss[t]:.3g}" for t in tasks], f"{m.val_accuracy:.3f}")
                progress.update(bar, advance=1)

        result = run_trial(prep, lambdas, seed=seed, callbacks=trial_callbacks(prep, _Show()))

    if as_json:
        print(json.dumps(result.to_dict(), allow_nan=False))
    else:
        console.print(table)
    if result.status == "failed_sanity":
        raise _fail([f"sanity gate failed: {result.reason}"], EXIT_CHECK_FAILED)
    if not as_json:
        console.print(f"[bold]{result.metric}[/bold] {result.value:.4f} (best epoch {result.best_epoch}), "
                      f"test accuracy {result.test_accuracy:.4f}, {result.seconds:.2f} s, status {result.status}")


@app.command()
def workloads(
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """List registered workloads (built-ins and plugins) and the aux tasks they offer."""
    from tuner.workloads import registered_workloads

    rows: list[dict[str, Any]] = []
    for name, cls in registered_workloads().items():
        try:
            tasks = {t.name: {"kind": t.kind, "dim": t.dim, "losses": list(t.losses), "description": t.description}
                     for t in cls().describe_tasks().values()}
        except Exception:  # workloads whose tasks depend on required params (table: your columns)
            tasks = {}
        rows.append({"name": name, "description": cls.description, "module": cls.__module__,
                     "params": sorted(cls.params_model.model_fields), "tasks": tasks})
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title="registered workloads")
    for col in ("name", "description", "params", "aux tasks"):
        table.add_column(col)
    for r in rows:
        listed = ", ".join(f"{n} ({v['kind']})" for n, v in r["tasks"].items()) or "from your data's columns"
        table.add_row(r["name"], r["description"], ", ".join(r["params"]), listed)
    console.print(table)


DbOption = Annotated[str | None, typer.Option("--db", help="store URL (default: $AUXTUNE_DB or sqlite:///./auxtune.db)")]


#: The stores opened by this command when it runs as a program (``main``), to close before it exits.
_stores_to_close: list[Store] | None = None


def _store(db: str | None) -> Store:
    """The store at ``db``; under ``main`` it is closed before the process exits (``exit_now`` skips the
    interpreter's teardown, whose garbage collection would close its connections, and SQLite then checkpoints)."""
    from storage import Store, StoreError

    try:
        store = Store(db)
    except StoreError as exc:
        raise _fail([str(exc).splitlines()[0]]) from None
    if _stores_to_close is not None:
        _stores_to_close.append(store)
    return store


def _missing_store(db: str | None) -> str | None:
    """The SQLite file ``db`` names (``--db``, else ``$AUXTUNE_DB``, else ``./auxtune.db``) when it does not exist,
    as a user would write it; ``None`` when it exists or the store is PostgreSQL. Opening a missing file would
    create an empty store (and run the migrations) where the command ran."""
    from storage import StoreError
    from storage.database import resolve_url, sqlite_path

    try:
        path = sqlite_path(resolve_url(db))
    except StoreError:  # an unparsable URL: ``_store`` names it
        return None
    if path is None or not path.name or path.exists():
        return None
    try:
        return f"./{path.relative_to(Path.cwd())}"
    except ValueError:
        return str(path)


def _existing_store(db: str | None) -> Store:
    """The store at ``db`` for a command that only reads an existing study; a SQLite file that does not exist is
    refused (exit 2) instead of being created empty."""
    missing = _missing_store(db)
    if missing is not None:
        raise _fail([f"no store at {missing}: pass --db or run a study first"])
    return _store(db)


def _study(store: Store, name: str) -> StudyRecord:
    from storage import StudyNotFound

    try:
        return store.get_study(int(name) if name.isdigit() else name)
    except StudyNotFound:
        known = [s.name for s in store.list_studies(limit=20)]
        raise _fail([f"no study {name!r} in {store.safe_url}; studies: {known}"]) from None


@app.command()
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="study spec, YAML or JSON")],
    db: DbOption = None,
    workers: Annotated[int, typer.Option(
        min=1, help="local workers sharing the store (one runs in this process, more as worker processes)")] = 1,
    lease_timeout: Annotated[float, typer.Option(help="seconds without heartbeat before a trial is requeued")] = 60.0,
    threads: ThreadsOption = None,
) -> None:
    """Run a whole study locally to n_trials with N worker processes; rerunning resumes it by name."""
    from storage import StudyConflict
    from tuner.execution.local import run_study
    from tuner.execution.submit import create_or_resume
    from tuner.spec.references import check_references

    _threads(threads)
    spec = _load(spec_path)
    store = _store(db)
    try:
        check_references(store, spec)  # a saved trunk or kd teacher the store cannot serve: nothing is stored
        study = create_or_resume(store, spec)
    except SpecError as exc:
        raise _fail(exc.lines()) from None
    except StudyConflict as exc:
        raise _fail([str(exc)]) from None
    console.print(f"study [bold]{study.name}[/bold] (id {study.id}) in {store.safe_url}: "
                  f"{study.n_trials} trials, {workers} worker(s)")
    if spec.objective.multi:  # said once here: the bar has room for the front's size only
        console.print(f"several objectives: no single best trial; the bar counts the trials on the Pareto front of "
                      f"{cli_pareto.objectives_text(spec.objective.metrics(), spec.objective.directions())} so far; "
                      f"their trade-offs: `auxtune best {study.name}`", highlight=False, soft_wrap=True)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                  auto_refresh=False) as bar:  # drawn on each progress read: a 10 Hz redraw thread slows training
        task = bar.add_task("trials", total=study.n_trials, info="")

        def show(p: RunProgress) -> None:
            if p.pareto is not None:  # a multi-objective study: its answer so far is the front, not one best value
                best = f"Pareto front {p.pareto.count}" if p.pareto.complete else "no result yet"
            else:
                best = f"best {p.best_value:.4f}" if p.best_value is not None else "no result yet"
            bar.update(task, completed=p.done, info=f"running {p.running} · failed {p.failed} · {best}", refresh=True)

        try:
            final = run_study(store, study, workers, show, lease_timeout_s=lease_timeout, threads=threads)
        except KeyboardInterrupt:
            bar.stop()
            err_console.print("stopped: running trials went back to the queue; run the same command to resume")
            raise typer.Exit(130) from None
    after = store.get_study(study.id)
    if after.status == "failed":
        raise _fail([f"study {after.name} failed: {after.status_reason or 'see the workers log lines above'}"],
                    EXIT_CHECK_FAILED)
    if final.done < final.total:
        raise _fail([f"{final.done}/{final.total} trials finished; the workers stopped early "
                     "(see their log lines above); run the same command to resume"], EXIT_CHECK_FAILED)
    if final.pareto is not None:  # no single best: the primary objective's alone would mislead
        console.print(f"done: {final.done} trials; {final.pareto.count} of {final.pareto.complete} complete trials "
                      f"on the Pareto front of {', '.join(spec.objective.metrics())}: see them and how to pick one "
                      f"with `auxtune best {after.name}`", highlight=False, soft_wrap=True)
    else:
        console.print(f"done: {final.done} trials, best {spec.objective.metric} = {final.best_value} "
                      f"at λ = {final.best_lambdas}")
    cli_trust.confirm_after_run(store, after, workers, lease_timeout)  # a spec's confirm block / arms


@app.command()
def best(
    name: Annotated[str, typer.Argument(help="study name or id")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
    url: Annotated[str | None, typer.Option(
        "--url", help="ask a running service over HTTP instead of the store, e.g. http://127.0.0.1:8000")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="AUXTUNE_TOKEN", help="bearer token for --url (or $AUXTUNE_TOKEN)")] = None,
) -> None:
    """The best λ set of a study so far (from the store, or from a service with --url); of a multi-objective
    study, its Pareto front (trial, each objective, λ) and how to pick one (--json: the /best document)."""
    if url is not None:
        _remote_best(name, url, token, db, as_json)  # defined with the remote commands below
        return
    store = _existing_store(db)
    study = _study(store, name)
    top = store.best_trial(study.id)
    if top is None:
        raise _fail([f"study {study.name!r} has no finished trial yet; wait for one, or run it"], EXIT_CHECK_FAILED)
    if len(study.directions) > 1:
        cli_pareto.print_front(console, study.name, cli_pareto.local_front(store, study), as_json)
        return
    spec = stored_spec(study.spec)
    lambdas = spec.complete_lambdas(lambda_params(top.params))
    doc = {"study": study.name, "lambdas": lambdas, "value": top.value, "trial": top.number,
           "metric": spec.objective.metric, "direction": top.direction}
    if TRUNK_MODE_PARAM in top.params:  # a study that searches the trunk mode (tuner.engine.transfer)
        doc["trunk_mode"] = top.params[TRUNK_MODE_PARAM]
    confirmation, verdict = cli_trust.confirmation_for_best(store, study)
    if confirmation is not None:
        doc["confirmation"] = confirmation
    if as_json:
        print(json.dumps(doc))
        return
    console.print(f"study {study.name}: best {doc['metric']} = {top.value:.4f} ({top.direction}) "
                  f"at trial {top.number}, λ = {lambdas}")
    if verdict is not None:
        console.print(verdict, highlight=False, soft_wrap=True)


@app.command()
def studies(db: DbOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the studies in the store; a multi-objective study with the size of its Pareto front so far."""
    store = _existing_store(db)
    rows: list[dict[str, Any]] = []
    listed = store.list_studies(limit=1000)
    fronts = cli_pareto.local_so_far(store, listed)
    for s in listed:
        counts = store.counts_by_state(s.id)
        top = store.best_trial(s.id)
        row = {"id": s.id, "name": s.name, "status": s.status, "n_trials": s.n_trials, "counts": counts,
               "best": top.value if top else None, "created_at": s.created_at.isoformat()}
        if s.id in fronts:  # several objectives: "best" is the primary objective's alone, and labelled so
            row |= {"best_primary_objective": primary_metric(s.spec),
                    "pareto": fronts[s.id]}
        rows.append(row)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title=f"studies in {store.safe_url}")
    for col in ("id", "name", "status", "finished/total", "running", "best"):
        table.add_column(col)
    for r in rows:
        finished = sum(v for k, v in r["counts"].items() if k not in ("queued", "running"))
        if "pareto" in r:
            p = r["pareto"]
            best = (f"Pareto front: {p['count']}\nover {cli_pareto.objectives_text(p['metrics'], p['directions'])}"
                    if p["complete"] else "")
        else:
            best = "" if r["best"] is None else f"{r['best']:.4f}"
        table.add_row(str(r["id"]), r["name"], r["status"], f"{finished}/{r['n_trials']}",
                      str(r["counts"].get("running", 0)), best)
    if any("pareto" in r for r in rows):
        table.caption = ("Pareto front: how many trials of a multi-objective study are on the front of its "
                         "objectives so far (it has no single best); the trade-offs: `auxtune best NAME`")
    console.print(table)


@app.command()
def trials(
    name: Annotated[str, typer.Argument(help="study name or id")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the trials of a study: λ, state, value, attempt, worker, sanity-gate reason."""
    store = _existing_store(db)
    study = _study(store, name)
    rows: list[dict[str, Any]] = [
        {"number": t.number, "state": t.state, "lambdas": t.params, "value": t.value, "attempt": t.attempt,
         "worker": t.worker_id, "reason": t.reason} for t in store.trials(study.id, limit=100000)]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title=f"trials of {study.name}")
    for col in ("#", "state", "λ", "value", "attempt", "worker", "reason"):
        table.add_column(col)
    for r in rows:
        lam = ", ".join(f"{k}={v:.3g}" if isinstance(v, int | float) else f"{k}={v}" for k, v in r["lambdas"].items())
        table.add_row(str(r["number"]), r["state"], lam, "" if r["value"] is None else f"{r['value']:.4f}",
                      str(r["attempt"]), r["worker"] or "", (r["reason"] or "")[:80])
    console.print(table)


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=0, help="embedded local worker processes (0: API only)")] = 1,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="no tokens: for localhost demos only")] = False,
    device: Annotated[str | None, typer.Option(help="device of the embedded workers (default: the spec's)")] = None,
    threads: ThreadsOption = None,
) -> None:
    """Run the REST API and N embedded local workers on one store (default: the SQLite file ./auxtune.db); a worker
    that dies is restarted (after 1 s, doubling up to 60 s while it keeps dying)."""
    from api.__main__ import main as api_main
    from storage import resolve_url
    from tuner.execution.local import threads_args
    from tuner.execution.supervisor import WorkerSupervisor

    url = resolve_url(db).render_as_string(hide_password=False)  # --db, else $AUXTUNE_DB, else ./auxtune.db
    _store(url).close()  # one clear line now if the database cannot be opened; migrations run once, here
    # A worker that dies is restarted, with backoff (tuner.execution.supervisor); stopping the service stops them all.
    with WorkerSupervisor(url, workers, "--forever", *(["--device", device] if device else []),
                          *threads_args(_threads(threads))):
        code = api_main(["--host", host, "--port", str(port), "--db", url, *(["--no-auth"] if no_auth else [])])
    raise typer.Exit(code)


@app.command()
def worker(
    db: DbOption = None,
    study: Annotated[list[str] | None, typer.Option(help="serve only this study (repeatable)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: the spec's)")] = None,
    forever: Annotated[bool, typer.Option(help="keep polling for new studies when idle")] = True,
    population: Annotated[int | None, typer.Option(
        min=1, help="trials of one study to train together as one batched model (default: the spec's)")] = None,
    threads: ThreadsOption = None,
) -> None:
    """Run one worker: pull trials of running studies from the store until stopped (SIGTERM-safe)."""
    from tuner.execution.local import threads_args
    from tuner.execution.worker import main as worker_main

    args = [*(["--db", db] if db else []), *sum((["--study", s] for s in study or []), []),
            *(["--device", device] if device else []), *(["--forever"] if forever else []),
            *(["--population", str(population)] if population else []),
            *threads_args(threads)]
    raise typer.Exit(worker_main(args))


# ---- the REST service over HTTP: submit, status, best --url (api.client) ------------------------------------
# Kept apart from the local-store commands above. 4xx and bad input exit 2; a study with no completed trial yet
# (409) exits 1, like the local `best`; a server error (5xx) exits 1; an unreachable server exits 2 (check --url).

UrlOption = Annotated[str | None, typer.Option(
    "--url", help="the service's address, e.g. http://127.0.0.1:8000 (auxtune serve); without it: the local store")]
TokenOption = Annotated[str | None, typer.Option(
    "--token", envvar="AUXTUNE_TOKEN", help="bearer token (or $AUXTUNE_TOKEN); not needed with serve --no-auth")]


def _api_fail(exc: ApiError) -> typer.Exit:
    from rich.markup import escape

    if exc.status == 409 and "no_result_yet" in exc.types:
        code = EXIT_CHECK_FAILED
    elif exc.status is not None and exc.status >= 500:
        code = EXIT_CHECK_FAILED
    else:
        code = EXIT_BAD_INPUT
    return _fail([escape(line) for line in exc.messages], code)


def _client(url: str, token: str | None) -> AuxtuneClient:
    from api.client import ApiError, AuxtuneClient

    try:
        return AuxtuneClient(url, token=token)
    except ApiError as exc:
        raise _api_fail(exc) from None


def _upload_local_files(client: AuxtuneClient, spec: StudySpec) -> dict[str, Any]:
    """The spec as JSON, with every data file the workload reads (``table``: data, attributes) uploaded first
    (POST /datasets) and replaced by its ``dataset:<id>``: the service reads no file paths of this machine."""
    from api.client import ApiError
    from tuner.workloads import get_workload

    document = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    params = dict(document.get("workload", {}).get("params") or {})
    label = str(params.get("label", "label"))
    local = [key for key in get_workload(spec.workload.name).path_params
             if isinstance(params.get(key), str) and params[key] and not params[key].startswith("dataset:")]
    if local:  # a taken name would refuse the study after the upload: say so before sending any file
        try:
            taken = client.find_study(spec.name)
        except ApiError as exc:
            if exc.status != 404:
                raise
        else:
            raise ApiError(409, [f"name: a study named {spec.name!r} already exists (id {taken['id']}, "
                                 f"{taken['status']}); give this spec another name to start a new study"])
    uploaded: dict[str, str] = {}
    for key in local:
        value = params[key]
        if value not in uploaded:
            # A target domain may be unlabelled; the table workload checks its columns against the data's.
            uploaded[value] = client.upload_dataset(value, label=label, unlabelled=key == "target_data")["reference"]
            err_console.print(f"uploaded {key} {value} as {uploaded[value]}", highlight=False, markup=False,
                              soft_wrap=True)
        params[key] = uploaded[value]
    document["workload"] = {**document["workload"], "params": params}
    return document


@app.command()
def submit(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="study spec, YAML or JSON")],
    url: Annotated[str, typer.Option("--url", help="the service's address, e.g. http://127.0.0.1:8000")],
    token: TokenOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the created study as JSON")] = False,
) -> None:
    """Submit a study to a running service; local data files of the spec are uploaded first."""
    from api.client import ApiError

    spec = _load(spec_path)  # checked here first: every problem named before anything is sent
    with _client(url, token) as client:
        try:
            created = client.submit(_upload_local_files(client, spec))
        except ApiError as exc:
            raise _api_fail(exc) from None
    if as_json:
        print(json.dumps(created))
        return
    console.print(f"study [bold]{created['name']}[/bold] submitted: id {created['id']}, status {created['status']}, "
                  f"{created['n_trials']} trials; follow it with: auxtune status {created['id']} --url {client.url}",
                  highlight=False, soft_wrap=True)


def _status_doc(name: str, study_id: int, state: str, n_trials: int, metric: str, direction: str,
                counts: dict[str, int], best_so_far: dict[str, Any] | None, reason: str = "",
                pareto: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``status`` prints; ``pareto``: a multi-objective study's front so far (``GET /studies/{id}``'s), whose
    ``best`` is then its primary objective's alone (labelled ``primary_objective``)."""
    finished = sum(n for s, n in counts.items() if s not in ("queued", "running"))
    doc = {"study": name, "id": study_id, "status": state, "status_reason": reason, "n_trials": n_trials,
           "finished": finished,
           "counts": counts, "metric": metric, "direction": direction, "best": best_so_far}
    if pareto is not None:  # a single-objective study's document stays as it was
        doc["pareto"] = pareto
    return doc


@app.command()
def status(
    study: Annotated[str, typer.Argument(metavar="ID", help="study id or name")],
    url: UrlOption = None,
    token: TokenOption = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """A study's status, trials per state and best value so far (of a multi-objective study: how many trials are
    on its Pareto front so far); from a service with --url, else the store. It warns (on stderr) while the study
    waits and no live worker can take it."""
    from rich.markup import escape

    from api.client import ApiError

    if url is not None:
        if db is not None:
            raise _fail(["give --url (a service) or --db (a store), not both"])
        with _client(url, token) as client:
            try:
                d = client.find_study(study)  # by id: the detail already; by name: a list entry
                if "counts" not in d:
                    d = client.study(d["id"])
            except ApiError as exc:
                raise _api_fail(exc) from None
        doc = _status_doc(d["name"], d["id"], d["status"], d["n_trials"], d["metric"], d["direction"], d["counts"],
                          d["best"], d.get("status_reason", ""), d.get("pareto"))
        doc["warning"] = d.get("warning")
    else:
        store = _existing_store(db)
        record = _study(store, study)
        top = store.best_trial(record.id)
        metric = primary_metric(record.spec)
        pareto = cli_pareto.local_so_far(store, [record]).get(record.id)
        best_doc = None if top is None else {"trial": top.number, "value": top.value,
                                             "lambdas": lambda_params(top.params)}
        if best_doc is not None and pareto is not None:
            best_doc["primary_objective"] = metric
        doc = _status_doc(record.name, record.id, record.status, record.n_trials, metric, record.direction,
                          store.counts_by_state(record.id), best_doc, record.status_reason, pareto)
        doc["warning"] = _no_worker_warning(store, record)
    if as_json:
        print(json.dumps(doc))
        return
    counts = " · ".join(f"{s} {n}" for s, n in doc["counts"].items())
    console.print(f"study [bold]{doc['study']}[/bold] (id {doc['id']}): {doc['status']}, "
                  f"{doc['finished']}/{doc['n_trials']} trials finished ({counts})", highlight=False, soft_wrap=True)
    if doc["status_reason"]:
        console.print(f"why {doc['status']}: {doc['status_reason']}", highlight=False, soft_wrap=True)
    if doc["warning"]:
        err_console.print(f"[yellow]warning:[/yellow] {escape(doc['warning'])}", highlight=False, soft_wrap=True)
    top_doc = doc["best"]
    if "pareto" in doc:
        cli_pareto.print_so_far(console, doc, f"auxtune best {doc['study']}" + (f" --url {url}" if url else ""))
    elif top_doc is None:
        console.print(f"best {doc['metric']}: no completed trial yet", highlight=False)
    else:
        console.print(f"best {doc['metric']} so far = {top_doc['value']:.4f} ({doc['direction']}) at trial "
                      f"{top_doc['trial']}, λ = {top_doc['lambdas']}", highlight=False, soft_wrap=True)


def _no_worker_warning(store: Store, study: StudyRecord) -> str | None:
    """What ``GET /studies/{id}`` warns about a study of this store no live worker can take
    (``tuner.execution.liveness``),
    with the service's window for a live heartbeat (``$AUXTUNE_WORKER_ALIVE_S``)."""
    from api.config import Settings
    from tuner.execution.liveness import count_alive, no_worker_warning

    return no_worker_warning(study.status, count_alive(store.workers(), Settings().worker_alive_s))


def _remote_best(name: str, url: str, token: str | None, db: str | None, as_json: bool) -> None:
    """``auxtune best NAME --url URL``: GET /studies/{id}/best, printed like the local ``best``."""
    from api.client import ApiError

    if db is not None:
        raise _fail(["give --url (a service) or --db (a store), not both"])
    with _client(url, token) as client:
        try:
            found = client.find_study(name)
            top = client.best(found["id"])
        except ApiError as exc:
            raise _api_fail(exc) from None
    if cli_pareto.is_front(top):
        cli_pareto.print_front(console, found["name"], top, as_json)
        return
    doc = {"study": found["name"], "lambdas": top["lambdas"], "value": top["value"], "trial": top["trial"],
           "metric": top["metric"], "direction": top["direction"]}
    if as_json:
        print(json.dumps(doc))
        return
    console.print(f"study {doc['study']}: best {doc['metric']} = {doc['value']:.4f} ({doc['direction']}) "
                  f"at trial {doc['trial']}, λ = {doc['lambdas']}")


def _ask_service(url: str, token: str | None, db: str | None, ask: Callable[[AuxtuneClient], Any]) -> Any:
    """``ask(client)`` of the service at ``url`` (``--db`` refused beside it); API errors exit as above."""
    from api.client import ApiError

    if db is not None:
        raise _fail(["give --url (a service) or --db (a store), not both"])
    with _client(url, token) as client:
        try:
            return ask(client)
        except ApiError as exc:
            raise _api_fail(exc) from None


@app.command()
def report(
    study: Annotated[str, typer.Argument(metavar="NAME", help="study name or id")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the HTML file to write")] = Path("report.html"),
    url: UrlOption = None,
    token: TokenOption = None,
    db: DbOption = None,
) -> None:
    """Write a study's report: one self-contained HTML file (plotly.js inlined) with the dashboard's figures."""
    if url is not None:
        html = _ask_service(url, token, db, lambda client: client.report(client.find_study(study)["id"]))
    else:
        from api.dashboard import report_html

        store = _existing_store(db)
        html = report_html(store, _study(store, study))
    try:
        output.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise _fail([f"--output {output}: cannot write it: {exc.strerror or exc}"]) from None
    console.print(f"wrote {output} ({len(html) / 1e6:.1f} MB); it opens offline in any browser", highlight=False)


# ---- end of the REST-service commands -------------------------------------------------------------------------

cli_trust.register(app)  # auxtune confirm, auxtune affinity (tuner/cli_trust.py)
cli_launch.register(app)  # auxtune launch slurm (tuner/cli_launch.py)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    global _stores_to_close
    _stores_to_close = []
    code: object = 0
    try:
        app()  # typer ends with SystemExit, also on success
    except KeyboardInterrupt:
        err_console.print("interrupted")
        code = 130
    except SystemExit as exc:
        code = exc.code
    for store in _stores_to_close:
        store.close()
    exit_now(code)  # without the interpreter's teardown (~0.5 s with torch loaded): tuner.execution.exiting


if __name__ == "__main__":
    main()
