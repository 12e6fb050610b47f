"""The study page's time to first render and payload at 100, 1 000 and 10 000 trials, in real Chromium.

For each size a fresh SQLite store gets one running study of that many finished trials (plus 2 running) by bulk
inserts (``tests/api/dashboard_factories.populated_study``: λ, values, 3 epochs of curves, sanity results; a few
seconds even at 10 000), then ``python -m api`` serves it on a loopback port and headless Chromium
(``/usr/bin/chromium`` through Playwright) opens ``/dashboard/studies/{id}``:

* cold: a new browser profile (nothing cached) and the server's first request for the study (its snapshot is
  read and every figure built);
* warm: the same page opened again: plotly.js from the browser cache, the study from the server's cache.

"First render" is the page's own mark (``performance.mark("auxtune:rendered")``, set once the header, best λ,
sanity panel, every figure, the first table page and the curves are drawn), in ms since navigation start.
Payload is what went over the wire (gzip where the browser accepts it) from the Resource Timing entries,
split into the page and its static files (HTML, CSS, JS, plotly.js) and the study's JSON. fANOVA importance is
asked for once the figures are drawn (not waited for) and is reported apart ("importance"), as is one poll of
an unchanged study.
Prints figures; asserts nothing.

    python bench/dashboard_load.py [--sizes 100,1000,10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import Store  # noqa: E402
from tests.api.dashboard_factories import populated_study  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
#: Sizes and timings from the page itself; the transfer sizes of everything it fetched up to the first render.
MEASURE = """() => {
  const mark = performance.getEntriesByName("auxtune:rendered")[0];
  const nav = performance.getEntriesByType("navigation")[0];
  const sum = (entries) => entries.reduce((n, e) => n + e.transferSize, 0);
  const before = performance.getEntriesByType("resource").filter((e) => e.startTime <= mark.startTime);
  const data = before.filter((e) => new URL(e.name).pathname.startsWith("/api/"));
  const assets = before.filter((e) => !new URL(e.name).pathname.startsWith("/api/"));
  const shown = performance.getEntriesByName("auxtune:shown")[0];
  const importance = performance.getEntriesByType("resource").find((e) => e.name.includes("/importance"));
  return {shown_ms: shown.startTime, render_ms: mark.startTime, page_bytes: nav.transferSize + sum(assets),
          data_bytes: sum(data), importance_ms: importance ? importance.duration : null};
}"""


@dataclass
class Load:
    shown_ms: float
    render_ms: float
    page_bytes: int
    data_bytes: int
    importance_ms: float | None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(db: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "api", "--db", db, "--port", str(port), "--no-auth",
                             "--log-level", "warning"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the API did not start within 60 s")


def open_page(context, url: str) -> Load:  # type: ignore[no-untyped-def]
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-rendered='1']", timeout=120_000)
    page.wait_for_function("performance.getEntriesByType('resource').some((e) => e.name.includes('/importance'))",
                           timeout=300_000)
    measured = Load(**page.evaluate(MEASURE))
    page.close()
    return measured


def measure(size: int, runs: int, browser) -> dict[str, object]:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(prefix="auxtune-dash-") as tmp:
        db = f"sqlite:///{Path(tmp) / 'dash.db'}"
        t0 = time.perf_counter()
        with Store(db) as store:
            study = populated_study(store, f"bench-{size}", size, running=2)
        populate_s = time.perf_counter() - t0
        cold: list[Load] = []
        warm: list[Load] = []
        extra: dict[str, float] = {}
        for _ in range(runs):
            port = free_port()
            proc = serve(db, port)
            try:
                url = f"http://127.0.0.1:{port}/dashboard/studies/{study.id}"
                context = browser.new_context()
                cold.append(open_page(context, url))
                warm.append(open_page(context, url))
                context.close()
                api = f"http://127.0.0.1:{port}/api/v1/dashboard/studies/{study.id}"
                version = httpx.get(api, timeout=60).json()["version"]
                poll = httpx.get(api, params={"since": version}, headers={"Accept-Encoding": "gzip"}, timeout=60)
                extra["poll_bytes"] = len(poll.content)
                t = time.perf_counter()
                httpx.get(api, params={"since": version}, timeout=60)
                extra["poll_ms"] = (time.perf_counter() - t) * 1000
            finally:
                proc.terminate()
                proc.wait(30)
    return {"size": size, "populate_s": populate_s, "cold": cold, "warm": warm, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="trials per study, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="page loads per size (median shown)")
    args = parser.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium (make test installs it)")
    from playwright.sync_api import sync_playwright

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"study page /dashboard/studies/{{id}} in headless Chromium; median of {args.runs} loads; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    header = (f"{'trials':>7} | {'numbers+table':>13} {'all figures':>11} | {'warm':>15} | {'page+static':>11} "
              f"{'study JSON':>10} {'warm total':>10} | {'poll':>12} | {'importance':>10}")
    print(header)
    print("-" * len(header))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        for size in sizes:
            r = measure(size, args.runs, browser)
            cold: list[Load] = r["cold"]  # type: ignore[assignment]
            warm: list[Load] = r["warm"]  # type: ignore[assignment]
            med = statistics.median
            print(f"{size:>7} | {med(c.shown_ms for c in cold):>10.0f} ms {med(c.render_ms for c in cold):>8.0f} ms "
                  f"| {med(w.shown_ms for w in warm):>5.0f} / {med(w.render_ms for w in warm):>5.0f} ms "
                  f"| {med(c.page_bytes for c in cold) / 1024:>8.0f} kB "
                  f"{med(c.data_bytes for c in cold) / 1024:>7.1f} kB "
                  f"{med(w.page_bytes + w.data_bytes for w in warm) / 1024:>7.1f} kB | {r['poll_bytes']:>4.0f} B "
                  f"{r['poll_ms']:>4.0f} ms | {med(c.importance_ms or 0 for c in cold):>7.0f} ms")
        browser.close()
    print("numbers+table: navigation start → header, best λ, sanity panel and the first table page shown "
          "(plotly.js still loading); all figures: → every figure and the curves drawn (cold: new browser "
          "profile, server's first request of the study); warm: both again on a second visit. "
          "page+static: HTML, CSS, JS and plotly.js (gzip; cached after the first visit). study JSON: state, "
          "table page and curves up to the first render. poll: one unchanged-study poll (bytes, server time). "
          "importance: the page's fANOVA request (cold), asked for once the figures are drawn.")


if __name__ == "__main__":
    main()
