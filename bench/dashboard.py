"""How fast the dashboard's study page is usable on a large study, in headless Chromium.

A study of ``--trials`` trials (random search over 5 parameters, 8 workers, each trial
with ``--measurements`` intermediate values, about 1 in 5 stopped early) is written
through the server's own services into a fresh SQLite file; ``tuneforge serve`` serves
it, and Debian's Chromium (driven by Playwright) opens ``/#/study/1`` ``--runs`` times,
each in a fresh browser context (nothing cached). Times are from the start of the
navigation (the page's ``performance.now()``):

- header and table: the study's header and the first page of the trial table are there
  (the page answers clicks: sort, filter, paging, actions);
- first figure: the optimization history is drawn (with the trials fetched so far);
- all trials: every trial is fetched and the figures on screen are drawn with all of them;
- longest task: the longest main-thread task seen during the load (input waits for it).

It also lists the API requests behind the page: each trial request asks for one page
(at most 1,000 trials), never the whole study.

    python -m bench.dashboard                      # 10,000 trials, 3 runs
    python -m bench.dashboard --trials 2000 --runs 1
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

CHROMIUM = os.environ.get("TUNEFORGE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TARGET_SECONDS = 2.0
WORKERS = 8
SPEC: dict[str, Any] = {
    "name": "dashboard-bench",
    "parameters": [
        {"name": "lr", "type": "float", "low": 1e-5, "high": 0.1, "scale": "log"},
        {"name": "depth", "type": "int", "low": 1, "high": 12},
        {"name": "batch", "type": "discrete", "values": [16, 32, 64]},
        {"name": "optimizer", "type": "categorical", "values": ["adam", "sgd"]},
        {"name": "dropout", "type": "float", "low": 0.0, "high": 0.5},
    ],
    "metrics": [{"name": "accuracy", "goal": "maximize"}],
    "algorithm": "random",
    "seed": 0,
}
#: Installed before the page's scripts: records the longest main-thread task, and the
#: moment the table's first row and the drawn history enter the document (a busy main
#: thread would delay a check from outside the page, not these).
PAGE_WATCH = """
window.__longest = 0;
window.__marks = {};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
}).observe({ type: "longtask", buffered: true });
new MutationObserver(() => {
  const m = window.__marks;
  if (!m.table && document.querySelector("#trial-table tbody tr")) m.table = performance.now();
  const d = document.getElementById("plot-history");
  if (!m.first && d && d.data && d.dataset.dirty === "0") m.first = performance.now();
}).observe(document, { subtree: true, childList: true, attributes: true });
"""
#: The figures on screen are drawn and current, and every trial is in.
SETTLED = """() => document.body.dataset.loaded === "true" &&
  [...document.querySelectorAll(".plot")].every((d) => {
    const r = d.closest("section").getBoundingClientRect();
    const onScreen = r.top < innerHeight && r.bottom > 0;
    return !onScreen || d.dataset.dirty === "0";
  })"""


def accuracy(params: dict[str, Any], step: int) -> float:
    base = 1 - abs(params["depth"] - 6) / 12 - params["dropout"] / 5
    return round(base * (1 - 0.5 ** (step + 1)), 6)


def seed_study(url: str, trials: int, measurements: int) -> int:
    """Write the study through the services (as the API would), in batches of suggestions."""
    from tuneforge.api.db.engine import Database
    from tuneforge.api.db.migrate import upgrade
    from tuneforge.api.services import completions, studies, suggest
    from tuneforge.api.services import trials as trial_service

    upgrade(url)
    db = Database(url, pool_size=1)
    rng = random.Random(0)
    study, _ = studies.create_study(db, SPEC)
    made = 0
    while made < trials:
        worker = f"host-{made // 100 % WORKERS}"
        batch, _ = suggest.suggest(db, study.id, min(100, trials - made), worker)
        for trial in batch:
            stop_at = rng.randrange(1, measurements) if rng.random() < 0.2 else measurements
            value = 0.0
            for step in range(stop_at):
                value = accuracy(dict(trial.params), step)
                trial_service.add_measurement(
                    db, study.id, trial.number, step, {"accuracy": value}, 0.5 * (step + 1)
                )
            completions.complete_trial(db, study.id, trial.number, {"accuracy": value}, False, None)
        made += len(batch)
    db.dispose()
    return study.id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "tuneforge.cli", "serve", "--db", url, "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--log-level", "warning"])
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def measure(browser: Any, base: str, study: int) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(PAGE_WATCH)
    page = context.new_page()
    page.goto(f"{base}/#/study/{study}")
    page.wait_for_function("() => window.__marks.table && window.__marks.first", timeout=60_000)
    marks = page.evaluate("window.__marks")
    page.wait_for_function(SETTLED, timeout=120_000, polling=10)
    settled = page.evaluate("performance.now()")
    requests = page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('/api/'))"
    )
    longest = page.evaluate("window.__longest")
    rows = page.locator("#trial-table tbody tr").count()
    context.close()
    return {
        "table": marks["table"] / 1000,
        "first": marks["first"] / 1000,
        "settled": settled / 1000,
        "longest": longest / 1000,
        "requests": requests,
        "rows": rows,
    }


def trial_pages(requests: list[str]) -> list[int]:
    """The page_size of every trial-list request of the first load (not the later polls,
    which ask only for trials updated since the one before)."""
    sizes = []
    for url in requests:
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        if parsed.path.endswith("/trials") and "updated_after" not in query:
            sizes.append(int(query["page_size"][0]))
    return sizes


def report(args: argparse.Namespace, seconds: float, runs: list[dict[str, Any]]) -> str:
    def cell(key: str) -> str:
        values = [r[key] for r in runs]
        return f"{statistics.median(values):.2f} (max {max(values):.2f})"

    pages = trial_pages(runs[0]["requests"])
    lines = [
        "# Dashboard on a large study",
        "",
        f"- command: `python -m bench.dashboard --trials {args.trials} "
        f"--measurements {args.measurements} --runs {args.runs}`",
        f"- machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"load average {args.load:.1f} at the start; Chromium at {CHROMIUM} "
        "(software WebGL: --disable-gpu)",
        f"- study: {args.trials} trials, {args.measurements} intermediate values each "
        f"(fewer for the stopped ones), {WORKERS} workers; written in {seconds:.0f} s "
        "(0: reused)",
        "",
        "| seconds from navigation (median of runs) | value |",
        "|---|---|",
        f"| header and trial table | {cell('table')} |",
        f"| first figure (history) | {cell('first')} |",
        f"| all trials in, figures on screen drawn | {cell('settled')} |",
        f"| longest main-thread task | {cell('longest')} |",
        "",
        f"- usable (header and table) vs the {TARGET_SECONDS:.0f} s target: "
        f"{statistics.median(r['table'] for r in runs) / TARGET_SECONDS:.2f}x of the budget",
        f"- table rows in the DOM: {runs[0]['rows']}",
        f"- trial requests of the first load: {len(pages)}, each at most {max(pages)} trials "
        f"(page_size={sorted(set(pages))}); later updates ask only for changed trials",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--measurements", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--db", type=Path, help="keep the study in this SQLite file; reuse it when it exists"
    )
    args = parser.parse_args(argv)
    args.load = os.getloadavg()[0]  # other work on the machine slows every number below
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        url = f"sqlite:///{path.resolve()}"
        started = time.monotonic()
        study = 1 if path.exists() else seed_study(url, args.trials, args.measurements)
        seconds = time.monotonic() - started
        proc, base = start_server(url)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                runs = [measure(browser, base, study) for _ in range(args.runs)]
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    print(report(args, seconds, runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
