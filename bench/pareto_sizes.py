"""What it costs to say how many trials are on a multi-objective study's Pareto front where studies are summarised.

``GET /studies[/{id}]``, the dashboard's studies page, ``auxtune status``, ``studies`` and ``run``'s progress count
the front of a multi-objective study with ``Store.pareto_sizes`` (its values read from Optuna's tables in one
query). For each size, one SQLite store gets a single-objective and a multi-objective study of that many finished
trials (``tests/api/dashboard_factories.populated_study``; the multi-objective one in Optuna's ledger too), and
this process times, interleaved, in CPU seconds (median of --reps):

* the studies page's row (``api.dashboard.payloads.studies_page``) of the single-objective study (what a row
  costs without a front) and of the multi-objective one (the same, plus its front: counted again only when its
  count of complete trials changed, so here, as on most polls, just that count is asked);
* ``pareto_sizes`` on a store that has not counted the front yet (a fresh ``Store``: the first request after a
  start) and on the same store once a trial completed (the count asked again), and ``pareto_front`` (every
  trial loaded through Optuna: the way not taken), once.

With --browser, the studies page (``/dashboard/studies``) is opened in headless Chromium (``/usr/bin/chromium``)
from a fresh server whose store holds only the single-objective or only the multi-objective study, alternately,
twice each (the server's first request, then again), each in a new browser profile: time from navigation start
to the table drawn, and the time of its studies JSON request.
Prints figures; asserts nothing.

    python bench/pareto_sizes.py [--sizes 1000,10000] [--reps 15] [--browser] [--loads 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.dashboard.payloads import studies_page  # noqa: E402
from storage import Store  # noqa: E402
from tests.api.dashboard_factories import populated_study  # noqa: E402

#: The page's own timings once the table is drawn: since navigation start, and the studies JSON's request.
MEASURE = """() => {
  const data = performance.getEntriesByType("resource").find((e) => e.name.includes("/api/v1/dashboard/studies"));
  return {render_ms: performance.now(), json_ms: data ? data.responseEnd - data.requestStart : null};
}"""


def cpu_ms(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) * 1000


def server_side(size: int, reps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="auxtune-front-") as tmp, Store(f"sqlite:///{Path(tmp) / 'f.db'}") as store:
        single = populated_study(store, "single", size)
        multi = populated_study(store, "multi", size, multi_objective=True)
        sizes = store.pareto_sizes([multi.id])[multi.id]
        timings: dict[str, list[float]] = {"single": [], "multi": [], "sizes": [], "recount": []}
        for _ in range(reps):  # interleaved: a change of load hits all alike
            timings["single"].append(cpu_ms(lambda: studies_page(store, [single], 1)))
            timings["multi"].append(cpu_ms(lambda: studies_page(store, [multi], 1)))
            with Store(store.url) as fresh:  # nothing counted yet
                timings["sizes"].append(cpu_ms(lambda: fresh.pareto_sizes([multi.id])))  # noqa: B023
            store._pareto_sizes.clear()  # as if a trial had completed since: counted again on a warm store
            timings["recount"].append(cpu_ms(lambda: store.pareto_sizes([multi.id])))
        front_ms = cpu_ms(lambda: store.pareto_front(multi.id))
        med = {k: statistics.median(v) for k, v in timings.items()}
        print(f"{size:>7} | {sizes.count:>5} of {sizes.complete:>5} | {med['single']:>8.1f} ms {med['multi']:>8.1f} ms "
              f"(+{med['multi'] - med['single']:.1f}) | {med['sizes']:>13.1f} / {med['recount']:>6.1f} ms "
              f"| {front_ms:>9.0f} ms")


def browser_side(size: int, loads: int) -> None:
    from playwright.sync_api import sync_playwright

    from bench.dashboard_load import CHROMIUM, free_port, serve

    seen: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="auxtune-front-page-") as tmp, sync_playwright() as pw:
        dbs = {}
        for kind in ("single", "multi"):
            dbs[kind] = f"sqlite:///{Path(tmp) / f'{kind}.db'}"
            with Store(dbs[kind]) as store:
                populated_study(store, kind, size, multi_objective=kind == "multi")
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        for _ in range(loads):
            for kind, db in dbs.items():  # alternately: a change of load hits both alike
                port = free_port()
                proc = serve(db, port)
                try:
                    for visit in ("first", "again"):  # the server's first request (nothing counted yet), then a poll's
                        context = browser.new_context()
                        page = context.new_page()
                        page.goto(f"http://127.0.0.1:{port}/dashboard/studies")
                        page.wait_for_selector("body[data-rendered='1']", timeout=60_000)
                        seen.setdefault((kind, visit), []).append(page.evaluate(MEASURE))
                        context.close()
                finally:
                    proc.terminate()
                    proc.wait(30)
        browser.close()
    med = {key: {k: statistics.median(r[k] for r in rows) for k in ("render_ms", "json_ms")}
           for key, rows in seen.items()}
    cells = " | ".join(f"{med[('single', v)]['render_ms']:>5.0f} / {med[('multi', v)]['render_ms']:>5.0f} ms "
                       f"(JSON {med[('single', v)]['json_ms']:>5.1f} / {med[('multi', v)]['json_ms']:>5.1f} ms)"
                       for v in ("first", "again"))
    print(f"{size:>7} | {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="finished trials per study, comma-separated")
    parser.add_argument("--reps", type=int, default=15, help="timed calls of each (median shown)")
    parser.add_argument("--browser", action="store_true", help="also open the studies page in headless Chromium")
    parser.add_argument("--loads", type=int, default=5, help="page loads per study with --browser (median shown)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; CPU ms, median of {args.reps}")
    header = (f"{'trials':>7} | {'front of complete':>17} | {'studies-page row: 1 obj / 2 obj':>31} | "
              f"{'pareto_sizes: first / recount':>30} | {'pareto_front':>12}")
    print(header)
    print("-" * len(header))
    for size in sizes:
        server_side(size, args.reps)
    print("studies-page row: studies_page() of one study (counts, best trial; 2 objectives: + its front's size, "
          "unchanged since the last call); pareto_sizes: counting the front on a fresh store (first) and again on "
          "the same store once its count of complete trials changed (recount); "
          "pareto_front: the front read through Optuna (every trial), once.")
    if args.browser:
        print(f"\n/dashboard/studies in headless Chromium, new profile each load; median of {args.loads}; "
              f"load average {os.getloadavg()[0]:.1f}")
        header = (f"{'trials':>7} | {'first request: drawn 1 obj / 2 obj (studies JSON)':>47} | "
                  f"{'again: drawn 1 obj / 2 obj (studies JSON)':>47}")
        print(header)
        print("-" * len(header))
        for size in sizes:
            browser_side(size, args.loads)
        print("drawn: navigation start → table drawn (body[data-rendered]), new browser profile; studies JSON: "
              "request → response end of /api/v1/dashboard/studies; first request: the server's first (a fresh "
              "server: the front not counted yet); again: the next page load (as a poll: the count unchanged).")


if __name__ == "__main__":
    main()
