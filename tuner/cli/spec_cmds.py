"""``auxtune validate``, ``trial`` and ``workloads``: check a spec, run one trial of it, list what a spec can use."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuner.cli.common import (
    EXIT_CHECK_FAILED,
    check_threads,
    console,
    err_console,
    fail,
    load_spec_file,
    missing_store,
    open_store,
)
from tuner.cli.options import DbOption, DeviceOption, JsonOption, SpecArgument, ThreadsOption

if TYPE_CHECKING:
    from tuner.engine.prepared import PreparedStudy
    from tuner.spec import LambdaSpec, StudySpec


def _parse_lambdas(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise fail([f"--lambda {item!r}: expected TASK=VALUE, e.g. --lambda ear=1.5"]) from None
    return out


def _bounds(lam: LambdaSpec) -> str:
    if lam.fixed is not None:
        return f"fixed {lam.fixed}"
    return f"in [{lam.low}, {lam.high}]" + (" log" if lam.log else "")


def _prepare(spec: StudySpec, device: str | None) -> PreparedStudy:
    from tuner.engine.prepared import prepare
    from tuner.workloads import WorkloadError

    try:
        return prepare(spec, device)
    except WorkloadError as exc:
        raise fail([str(exc)]) from None


def _with_saved_models(spec: StudySpec, prep: PreparedStudy, db: str | None) -> PreparedStudy:
    """``prep`` with the saved trunk and kd teachers the spec names, checked against the store at ``db``."""
    from tuner.engine.transfer import with_saved_models
    from tuner.spec import SpecError
    from tuner.spec.references import check_references, saved_model_refs

    refs = saved_model_refs(spec)
    if not refs:
        return prep
    missing = missing_store(db)
    if missing is not None:  # opening it would create an empty store, which cannot serve them
        field, ref = refs[0]
        raise fail([f"{field}: {ref} names a saved model, but the store {missing} does not exist; "
                    "pass --db with the store that holds it (or set AUXTUNE_DB)"])
    store = open_store(db)
    try:
        check_references(store, spec)
        return with_saved_models(prep, store)
    except SpecError as exc:
        raise fail(exc.lines()) from None
    finally:
        store.close()


def validate(spec_path: SpecArgument, device: DeviceOption = None, db: DbOption = None) -> None:
    """Check a spec (and the saved models it names, trunk.from_trial and kd teachers, in the store at --db) and run
    the one-minibatch sanity gate at the default λ."""
    from tuner.engine.sanity import study_gate
    from tuner.search import make_backend
    from tuner.spec import SpecError

    spec = load_spec_file(spec_path)
    try:
        make_backend(spec)  # what ``run`` and the API refuse too: nothing to search, a grid too large, …
    except SpecError as exc:
        raise fail(exc.lines()) from None
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
    raise fail([f"sanity gate failed at λ={lambdas}: {result.reason}"], EXIT_CHECK_FAILED)


def trial(
    spec_path: SpecArgument,
    lambda_: Annotated[list[str] | None, typer.Option(
        "--lambda", "-l", help="TASK=VALUE; repeat per task. Unset tasks take their default λ.")] = None,
    seed: Annotated[int | None, typer.Option(help="trial seed (model init, batch order)")] = None,
    device: DeviceOption = None,
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
) -> None:
    """Run one full trial (sanity gate, then training) and print per-epoch, per-task figures."""
    from tuner.engine.callbacks import trial_callbacks
    from tuner.engine.callbacks.base import TrialCallback
    from tuner.engine.loop import run_trial
    from tuner.engine.threads import apply_thread_policy
    from tuner.results import EpochMetrics
    from tuner.spec import SpecError

    apply_thread_policy(check_threads(threads))  # as a worker would run it: the same result at the same thread count
    spec = load_spec_file(spec_path)
    try:
        lambdas = spec.complete_lambdas(_parse_lambdas(lambda_ or []))
    except SpecError as exc:
        raise fail(exc.lines()) from None
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
        raise fail([f"sanity gate failed: {result.reason}"], EXIT_CHECK_FAILED)
    if not as_json:
        console.print(f"[bold]{result.metric}[/bold] {result.value:.4f} (best epoch {result.best_epoch}), "
                      f"test accuracy {result.test_accuracy:.4f}, {result.seconds:.2f} s, status {result.status}")


def workloads(as_json: JsonOption = False) -> None:
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
