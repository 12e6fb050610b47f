"""What ``auxtune best`` prints for a multi-objective study: its Pareto front, not one trial.

The document is the one ``GET /studies/{id}/best`` answers (``tuner.analysis.pareto.ParetoPublic``): built from the
local store or fetched from a service (``tuner.cli.source``); ``--json`` prints it unchanged, else
``print_front`` prints a table (trial, each objective, each λ, the objectives it is best on) and how to pick.

Where ``status``, ``studies`` and ``run`` summarise such a study, they give the front's size so far instead of its
primary objective's best: ``local_so_far`` (``pareto`` of ``GET /studies/{id}``), ``print_so_far``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from storage import Store, StudyRecord

ARROW = {"maximize": "↑", "minimize": "↓"}


def is_front(doc: dict[str, Any]) -> bool:
    """Whether an answer of ``/best`` is a Pareto front (a multi-objective study) rather than one trial."""
    return "front" in doc and "how_to_pick" in doc


def objectives_text(metrics: list[str], directions: list[str]) -> str:
    """``val_accuracy ↑, val_loss:harmful ↓``: a multi-objective study's objectives, in short."""
    return ", ".join(f"{m} {ARROW.get(d, d)}" for m, d in zip(metrics, directions, strict=True))


def local_so_far(store: Store, studies: list[StudyRecord]) -> dict[int, dict[str, Any]]:
    """The front's size so far of each multi-objective study of ``studies``, by id, as ``GET /studies/{id}`` has
    it (``pareto``: metrics, directions, count, complete); single-objective studies are absent."""
    from tuner.analysis.pareto import pareto_so_far

    return {i: p.model_dump(mode="json") for i, p in pareto_so_far(store, studies).items()}


def print_so_far(console: Console, doc: dict[str, Any], best_command: str) -> None:
    """``status`` of a multi-objective study (its document with ``pareto``): the front's size so far, where
    ``best_command`` shows the trade-offs, and the primary objective's best, labelled as that alone."""
    p = doc["pareto"]
    over = ", ".join(f"{m} ({d})" for m, d in zip(p["metrics"], p["directions"], strict=True))
    if not p["complete"]:
        console.print(f"Pareto front of {over}: no completed trial yet", highlight=False, soft_wrap=True)
        return
    console.print(f"Pareto front so far: {p['count']} of {p['complete']} complete trials, over {over}; "
                  f"no single trial is best: see the trade-offs with `{best_command}`", highlight=False,
                  soft_wrap=True)
    top = doc["best"]
    if top is not None:
        console.print(f"best on the primary objective alone: {doc['metric']} = {top['value']:.4f} "
                      f"({doc['direction']}) at trial {top['trial']}", highlight=False, soft_wrap=True)


def print_front(console: Console, study: str, doc: dict[str, Any], as_json: bool) -> None:
    """The front as JSON (the ``/best`` document), or as a table and the how-to-pick line."""
    if as_json:
        print(json.dumps(doc))
        return
    metrics, directions = doc["metrics"], doc["directions"]
    console.print(f"study {study}: {doc['count']} of {doc['complete']} complete trials on the Pareto front of "
                  + ", ".join(f"{m} ({d})" for m, d in zip(metrics, directions, strict=True)),
                  highlight=False, soft_wrap=True)
    names = list(doc["front"][0]["lambdas"]) if doc["front"] else []
    best_on: dict[int, list[str]] = {}
    for metric, trial in doc["best_by_objective"].items():
        best_on.setdefault(int(trial), []).append(metric)
    header = ["trial", *(f"{m} {ARROW.get(d, '')}" for m, d in zip(metrics, directions, strict=True)),
              *(f"λ {n}" for n in names), "best on"]
    rows = [[str(t["trial"]), *(f"{t['values'][m]:.4g}" for m in metrics), *(f"{t['lambdas'][n]:.4g}" for n in names),
             ", ".join(best_on.get(t["trial"], []))] for t in doc["front"]]
    # Plain aligned columns, never wrapped or cut: the table stays whole in a pipe or a narrow terminal.
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [c.rjust(w) for c, w in zip(row[:-1], widths, strict=False)] + [row[-1]]
        line = "  ".join(cells)
        console.print(line.rstrip(), highlight=False, markup=False, soft_wrap=True)
    console.print(f"how to pick: {doc['how_to_pick']}", highlight=False, soft_wrap=True)
