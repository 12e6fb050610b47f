"""``auxtune confirm`` and ``auxtune affinity``: can the answer of a study be trusted (issue #7)? From the local
store, or from a service with --url (``tuner.cli.source``); and ``auxtune run``'s confirmation of a spec that asks
for one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tuner.cli.common import EXIT_CHECK_FAILED, console, fail
from tuner.cli.options import DbOption, JsonOption, StudyArgument, TokenOption, UrlOption, WorkersOption
from tuner.cli.source import confirm_with_workers, study_source

if TYPE_CHECKING:
    from storage import Store, StudyRecord


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
    from tuner.analysis.confirm import ablation_lines, verdict_line

    arms = Table(title=f"confirmation of {report['study']} ({report['state']}, {report['seeds']} seeds per arm)")
    for col in ("arm", "λ", "runs", f"{report['val_metric']}", f"{report['metric']}"):
        arms.add_column(col)
    for a in report["arms"]:
        c = a["counts"]
        runs = f"{c['complete']}/{a['seeds']}" + (f" ({c['failed']} failed)" if c["failed"] else "")
        arms.add_row(a["arm"], _params(a), runs, _mean_std(a["val"]), _mean_std(a["test"]))
    console.print(arms)
    method = {"welch": "Welch's t-test", "paired": "paired t-test", "paired_splits": "paired t-test, splits redrawn",
              "resampled": "corrected resampled t-test"}.get(report.get("method", "welch"))
    table = Table(title=f"differences on {report['metric']} (arm − reference, {method}, α = {report['alpha']})")
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
    for line in ablation_lines(report):
        console.print(line, highlight=False, soft_wrap=True)


def _seeds(value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    try:
        seeds = int(value)
    except ValueError:
        seeds = 0
    if not 2 <= seeds <= 1000:
        raise typer.BadParameter(f"{value!r}: give a number of seeds from 2 to 1000, or auto")
    return seeds


def _test_choice(value: str | None) -> str | None:
    if value is not None and value not in ("auto", "paired", "corrected"):
        raise typer.BadParameter(f"{value!r}: choose auto, paired or corrected")
    return value


def confirm(
    study: StudyArgument,
    seeds: Annotated[str | None, typer.Option(help=(
        "seeds per arm, 2 … 1000, or auto: rounds until the CI excludes 0 or --max-seeds (default: the spec's, "
        "else 10)"))] = None,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", min=1, max=20, help="how many of the best λ sets to retrain (default: the spec's, else 1)")] = None,
    ablate: Annotated[bool | None, typer.Option(
        "--ablate/--no-ablate", help="one more arm per searched aux task with its λ at 0: a verdict per task")] = None,
    max_seeds: Annotated[int | None, typer.Option(
        "--max-seeds", min=2, max=1000, help="--seeds auto stops here at the latest (default: the spec's, else 16)")]
    = None,
    resample_splits: Annotated[bool | None, typer.Option(
        "--resample-splits/--fixed-split", help=(
            "redraw the data split with every seed (workloads with a split_seed; the default where possible)"))]
    = None,
    test: Annotated[str | None, typer.Option(
        "--test", callback=_test_choice, help=(
            "auto, paired (the paired t-test) or corrected (Nadeau & Bengio's corrected resampled t-test; needs "
            "redrawn splits)"))] = None,
    db: DbOption = None,
    workers: WorkersOption = 1,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retrain the best λ set and the λ = 0 baseline over fresh seeds and say whether best really is better (with
    --ablate, whether each aux task helps); with --url the service's workers retrain them and this follows them."""
    options = {k: v for k, v in {"seeds": _seeds(seeds), "top_k": top_k, "ablate": ablate, "max_seeds": max_seeds,
                                 "resample_splits": resample_splits, "test": test}.items() if v is not None}
    with study_source(url, token, db) as source:
        report = source.confirm(study, options, workers)
    if as_json:
        from api.dashboard.trust_figures import confirmation_document

        print(json.dumps(confirmation_document(report)))  # the document GET …/confirmation sends
    else:
        show_confirmation(report)
    if report["state"] != "complete":
        raise fail([f"{report['counts']['queued'] + report['counts']['running']} run(s) unfinished (see the "
                    "workers' log lines above); run the same command to resume"], EXIT_CHECK_FAILED)


def affinity(
    study: StudyArgument,
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Task affinity of a study's aux tasks to the main task (TAG lookahead), and which ones to drop."""
    with study_source(url, token, db) as source:
        name, report = source.affinity(study)
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=f"task affinity to the main task in {name} (mean over trials that trained the task)")
    for col in ("aux task", "affinity", "std", "trials", "negative in", "advice"):
        table.add_column(col)
    for row in report["summary"]:
        table.add_row(row["task"], _fmt(row["affinity"], "+.3g"), _fmt(row["std"], ".2g"), str(row["trials"]),
                      str(row["negative_in"]), row["advice"] or "")
    console.print(table)
    for line in report["advice"]:
        console.print(line, highlight=False, soft_wrap=True)


def confirm_after_run(store: Store, study: StudyRecord, workers: int, lease_timeout_s: float) -> None:
    """``auxtune run``'s last step for a spec with a ``confirm`` block or ``arms``: the confirmation (its runs
    mostly ran already: the workers take them once the trials are done), then its report."""
    from tuner.analysis.confirm import ConfirmError, wants_confirmation
    from tuner.spec import stored_spec

    if not wants_confirmation(stored_spec(study.spec)):
        return
    try:
        report = confirm_with_workers(store, study, workers, lease_timeout_s=lease_timeout_s)
    except ConfirmError as exc:
        raise fail([f"confirmation: {exc}"], EXIT_CHECK_FAILED) from None
    show_confirmation(report)
    if report["state"] != "complete":
        raise fail(["confirmation runs unfinished; run `auxtune confirm` on the study to resume"], EXIT_CHECK_FAILED)
