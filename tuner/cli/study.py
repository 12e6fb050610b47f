"""``auxtune run``, ``submit``, ``status``, ``best``, ``report``, ``studies`` and ``trials``: a study's life.

``run`` tunes a study locally, ``submit`` hands it to a service; ``status``, ``best`` and ``report`` read it from
the store or, with --url, from a service (``tuner.cli.source``), and print the same either way; ``studies`` and
``trials`` list what the store holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuner.cli import pareto as cli_pareto
from tuner.cli.common import (
    EXIT_CHECK_FAILED,
    check_threads,
    console,
    err_console,
    existing_store,
    fail,
    find_study,
    load_spec_file,
    open_store,
)
from tuner.cli.options import (
    LEASE_TIMEOUT_S,
    DbOption,
    JsonOption,
    LeaseTimeoutOption,
    SpecArgument,
    StudyArgument,
    ThreadsOption,
    TokenOption,
    UrlOption,
    WorkersOption,
)
from tuner.cli.source import api_fail, open_client, study_source
from tuner.cli.trust import confirm_after_run
from tuner.spec import primary_metric

if TYPE_CHECKING:
    from api.client import AuxtuneClient
    from tuner.execution.local import Progress as RunProgress
    from tuner.spec import StudySpec

#: The keys of ``best``'s document in the order it prints them, after ``study``.
BEST_KEYS = ("lambdas", "params", "value", "trial", "metric", "direction", "trunk_mode", "search_estimate",
             "confirmed_estimate", "confirmation", "evaluations")


def run(
    spec_path: SpecArgument,
    db: DbOption = None,
    workers: WorkersOption = 1,
    lease_timeout: LeaseTimeoutOption = LEASE_TIMEOUT_S,
    threads: ThreadsOption = None,
) -> None:
    """Run a whole study locally to n_trials with N worker processes; rerunning resumes it by name."""
    from storage import StudyConflict
    from tuner.execution.local import run_study
    from tuner.execution.submit import create_or_resume
    from tuner.spec import SpecError

    check_threads(threads)
    spec = load_spec_file(spec_path)
    store = open_store(db)
    try:
        study = create_or_resume(store, spec)  # a saved trunk or kd teacher the store cannot serve: nothing stored
    except SpecError as exc:
        raise fail(exc.lines()) from None
    except StudyConflict as exc:
        raise fail([str(exc)]) from None
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
        raise fail([f"study {after.name} failed: {after.status_reason or 'see the workers log lines above'}"],
                   EXIT_CHECK_FAILED)
    if final.done < final.total:
        raise fail([f"{final.done}/{final.total} trials finished; the workers stopped early "
                    "(see their log lines above); run the same command to resume"], EXIT_CHECK_FAILED)
    if final.pareto is not None:  # no single best: the primary objective's alone would mislead
        console.print(f"done: {final.done} trials; {final.pareto.count} of {final.pareto.complete} complete trials "
                      f"on the Pareto front of {', '.join(spec.objective.metrics())}: see them and how to pick one "
                      f"with `auxtune best {after.name}`", highlight=False, soft_wrap=True)
    else:
        console.print(f"done: {final.done} trials, best {spec.objective.metric} = {final.best_value} "
                      f"at λ = {final.best_lambdas}")
    confirm_after_run(store, after, workers, lease_timeout)  # a spec's confirm block / arms


def _upload_local_files(client: AuxtuneClient, spec: StudySpec) -> dict[str, Any]:
    """The spec as JSON, with every data file or folder the workload reads uploaded first (POST /datasets) and
    replaced by its reference: the service reads no file paths of this machine. A folder (an ``images`` root) is
    zipped here (its images and CSVs) and becomes ``dataset:<id>``; a file inside it ``dataset:<id>/<path>``; in a
    spec with a folder, any other file is uploaded as a folder of its own; else a file is uploaded as a table
    (``table``: data, attributes, target_data), checked by the service against ``label``."""
    from api.client import ApiError
    from tuner.spec.dataset_refs import is_reference
    from tuner.workloads import get_workload

    document = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    params = dict(document.get("workload", {}).get("params") or {})
    label = str(params.get("label", "label"))
    local = [key for key in get_workload(spec.workload.name).path_params
             if isinstance(params.get(key), str) and params[key] and not is_reference(params[key])]
    if local:  # a taken name would refuse the study after the upload: say so before sending any file
        try:
            taken = client.find_study(spec.name)
        except ApiError as exc:
            if exc.status != 404:
                raise
        else:
            raise ApiError(409, [f"name: a study named {spec.name!r} already exists (id {taken['id']}, "
                                 f"{taken['status']}); give this spec another name to start a new study"])
    folders = {params[k]: "" for k in local if Path(params[k]).is_dir()}
    for value in folders:
        folders[value] = _upload_folder(client, Path(value), Path(value))
    uploaded: dict[str, str] = {}
    for key in local:
        value = params[key]
        if value in folders:
            params[key] = folders[value]
            continue
        inside = next((f for f in folders if Path(value).is_relative_to(f)), None)
        if inside is not None:
            params[key] = f"{folders[inside]}/{Path(value).relative_to(inside).as_posix()}"
            continue
        if value not in uploaded:
            # A target domain may be unlabelled; the table workload checks its columns against the data's.
            uploaded[value] = (f"{_upload_folder(client, Path(value).parent, Path(value))}/{Path(value).name}"
                               if folders else client.upload_dataset(value, label=label,
                                                                     unlabelled=key == "target_data")["reference"])
            err_console.print(f"uploaded {key} {value} as {uploaded[value]}", highlight=False, markup=False,
                              soft_wrap=True)
        params[key] = uploaded[value]
    document["workload"] = {**document["workload"], "params": params}
    return document


def _upload_folder(client: AuxtuneClient, folder: Path, content: Path) -> str:
    """Zip ``content`` (a folder, or one file of ``folder``) with paths relative to ``folder``, upload it and return
    its reference."""
    import tempfile
    import zipfile

    from tuner.workloads.archives import pack

    with tempfile.TemporaryDirectory(prefix="auxtune-upload-") as tmp:
        archive = Path(tmp) / f"{folder.name or 'data'}.zip"
        if content.is_dir():
            packed, left_out = pack(content, archive)
        else:
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.write(content, content.name)
            packed, left_out = 1, []
        reference = str(client.upload_dataset(archive)["reference"])
    skipped = f"; left out {len(left_out)} that are neither images nor CSVs, e.g. {left_out[0]}" if left_out else ""
    if content.is_dir():
        err_console.print(f"zipped {content} ({packed} files{skipped}) and uploaded it as {reference}",
                          highlight=False, markup=False, soft_wrap=True)
    return reference


def submit(
    spec_path: SpecArgument,
    url: Annotated[str, typer.Option("--url", help="the service's address, e.g. http://127.0.0.1:8000")],
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a study to a running service; local data files of the spec are uploaded first."""
    from api.client import ApiError

    spec = load_spec_file(spec_path)  # checked here first: every problem named before anything is sent
    with open_client(url, token) as client:
        try:
            created = client.submit(_upload_local_files(client, spec))
        except ApiError as exc:
            raise api_fail(exc) from None
    if as_json:
        print(json.dumps(created))
        return
    console.print(f"study [bold]{created['name']}[/bold] submitted: id {created['id']}, status {created['status']}, "
                  f"{created['n_trials']} trials; follow it with: auxtune status {created['id']} --url {client.url}",
                  highlight=False, soft_wrap=True)


def _status_doc(d: dict[str, Any]) -> dict[str, Any]:
    """What ``status`` prints, from the study as ``GET /studies/{id}`` answers it; ``pareto``: a multi-objective
    study's front so far, whose ``best`` is then its primary objective's alone (labelled ``primary_objective``);
    ``workers``: the live ones (``GET /workers``), each with its device."""
    finished = sum(n for s, n in d["counts"].items() if s not in ("queued", "running"))
    doc = {"study": d["name"], "id": d["id"], "status": d["status"], "status_reason": d.get("status_reason", ""),
           "n_trials": d["n_trials"], "finished": finished, "counts": d["counts"], "metric": d["metric"],
           "direction": d["direction"], "best": d["best"]}
    if d.get("pareto") is not None:  # a single-objective study's document stays as it was
        doc["pareto"] = d["pareto"]
    doc["warning"] = d.get("warning")
    doc["workers"] = [{k: w.get(k) for k in _WORKER_KEYS} for w in d.get("workers", []) if w.get("alive")]
    return doc


#: What ``status`` shows of each live worker (from ``GET /workers``): where it runs and on what device.
_WORKER_KEYS = ("id", "host", "device", "gpu", "device_label", "current_study_id", "current_trial")


def status(
    study: StudyArgument,
    url: UrlOption = None,
    token: TokenOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """A study's status, trials per state and best value so far (of a multi-objective study: how many trials are
    on its Pareto front so far); from a service with --url, else the store. It warns (on stderr) while the study
    waits and no live worker can take it."""
    with study_source(url, token, db) as source:
        doc = _status_doc(source.status(study))
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
    for w in doc["workers"]:
        on = f", trial {w['current_trial']} of this study" if w["current_study_id"] == doc["id"] else ""
        console.print(f"worker {w['id']} on {w['host']}: {w['device_label'] or w['device']}{on}", highlight=False,
                      soft_wrap=True, markup=False)
    top_doc = doc["best"]
    if "pareto" in doc:
        cli_pareto.print_so_far(console, doc, f"auxtune best {doc['study']}{source.flags}")
    elif top_doc is None:
        console.print(f"best {doc['metric']}: no completed trial yet", highlight=False)
    else:
        console.print(f"best {doc['metric']} so far = {top_doc['value']:.4f} ({doc['direction']}) at trial "
                      f"{top_doc['trial']}, λ = {top_doc['lambdas']}", highlight=False, soft_wrap=True)


def best(
    study: StudyArgument,
    db: DbOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """The best λ set of a study so far (from the store, or from a service with --url); of a multi-objective
    study, its Pareto front (trial, each objective, λ) and how to pick one (--json: the /best document)."""
    with study_source(url, token, db) as source:
        name, top, verdict = source.best(study)
    if cli_pareto.is_front(top):
        cli_pareto.print_front(console, name, top, as_json)
        return
    doc = {"study": name, **{k: top[k] for k in BEST_KEYS if k in top}}
    if as_json:
        print(json.dumps(doc))
        return
    evaluated = top.get("evaluations")
    over = "" if not evaluated else (f", the mean of {evaluated['n']} evaluations (trials "
                                     f"{', '.join(map(str, evaluated['trials']))})")
    console.print(f"study {name}: best {doc['metric']} = {doc['value']:.4f} ({doc['direction']}) "
                  f"at trial {doc['trial']}{over}, λ = {doc['lambdas']}")
    confirmed = doc.get("confirmed_estimate")
    if confirmed and confirmed["mean"] is not None:  # the winner's curse in the open
        ci = f" (95 % CI {confirmed['ci_low']:.4f} … {confirmed['ci_high']:.4f})" if confirmed["ci_low"] is not None \
            else ""
        console.print(f"search's estimate {doc['value']:.4f} (one seed, the best of the search); confirmed "
                      f"{confirmed['mean']:.4f}{ci} over {confirmed['n']} fresh seeds", highlight=False)
    if verdict is not None:
        console.print(verdict, highlight=False, soft_wrap=True)


def report(
    study: StudyArgument,
    output: Annotated[Path, typer.Option("--output", "-o", help="the HTML file to write")] = Path("report.html"),
    url: UrlOption = None,
    token: TokenOption = None,
    db: DbOption = None,
) -> None:
    """Write a study's report: one self-contained HTML file (plotly.js inlined) with the dashboard's figures."""
    with study_source(url, token, db) as source:
        html = source.report(study)
    try:
        output.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise fail([f"--output {output}: cannot write it: {exc.strerror or exc}"]) from None
    console.print(f"wrote {output} ({len(html) / 1e6:.1f} MB); it opens offline in any browser", highlight=False)


def studies(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the studies in the store; a multi-objective study with the size of its Pareto front so far."""
    store = existing_store(db)
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


def trials(study: StudyArgument, db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the trials of a study: λ, state, value, attempt, worker, sanity-gate reason."""
    store = existing_store(db)
    record = find_study(store, study)
    rows: list[dict[str, Any]] = [
        {"number": t.number, "state": t.state, "lambdas": t.params, "value": t.value, "attempt": t.attempt,
         "worker": t.worker_id, "reason": t.reason} for t in store.trials(record.id, limit=100000)]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title=f"trials of {record.name}")
    for col in ("#", "state", "λ", "value", "attempt", "worker", "reason"):
        table.add_column(col)
    for r in rows:
        lam = ", ".join(f"{k}={v:.3g}" if isinstance(v, int | float) else f"{k}={v}" for k, v in r["lambdas"].items())
        table.add_row(str(r["number"]), r["state"], lam, "" if r["value"] is None else f"{r['value']:.4f}",
                      str(r["attempt"]), r["worker"] or "", (r["reason"] or "")[:80])
    console.print(table)
