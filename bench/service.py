"""The service under a team's load: closed-loop clients against `tuneforge serve`, and the
same workload through Optuna's RDBStorage on the same PostgreSQL (issue 17).

Each client loops until the run's deadline: suggest -> 1 to 3 measurements -> complete
(tuneforge, over HTTP to 1 or 2 ``tuneforge serve`` processes, clients alternating
between them), or ask -> 1 to 3 ``trial.report`` -> tell (Optuna, one process per
client, each with its own ``RDBStorage``). Start-up is not timed: the loops start
together at a fixed moment and the first ``--warmup`` seconds are not counted.

Reported per cell: trials/s (completes inside the timed window), the servers' CPU per trial
(all their processes, from /proc: steadier than trials/s on a shared machine), the
seconds their threads waited for a core per CPU-second (``runq_per_cpu``), p50/p99 of
each call, and for a model-based algorithm the mean snapshot, fit and claim of its shared
fits and the number of fits thrown away as stale (``stale_claims``), from
``tuneforge_suggest_phase_seconds`` (one server process).
Large studies (``--large``, in :mod:`bench.service_large`): a study pre-filled with n
completed trials (written through the lifecycle module in one transaction, as
``POST .../trials`` would, only faster), then 8 clients for the timed window, plus the
cost of a study read and of a trial page.

    python -m bench.service --quick                  # a smoke-sized run (about a minute)
    python -m bench.service                          # the full matrix of issue 17
    python -m bench.service --clients 1 32 --algorithms random --backends postgresql

See docs/performance.md for the last measured run and what it reduced.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from .service_cpu import CpuWindow
from .service_http import Poster, bench_keys
from .service_locks import PHASES, lock_window

PG_ADMIN = os.environ.get("TUNEFORGE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PARAMS = [{"name": f"x{i}", "type": "float", "low": -5.0, "high": 5.0} for i in range(4)]
PARAMS.append({"name": "kind", "type": "categorical", "values": ["a", "b", "c"]})


def objective(params: dict[str, Any]) -> float:
    """A cheap stand-in for training (the service's cost is what is measured)."""
    shift = {"a": 0.0, "b": 0.5, "c": 1.0}[str(params["kind"])]
    return float(sum((float(params[f"x{i}"]) - 1.0) ** 2 for i in range(4)) + shift)


def spec(name: str, algorithm: str) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": PARAMS,
        "metrics": [{"name": "loss", "goal": "minimize"}],
        "algorithm": algorithm,
        "seed": 0,
    }


# ---- timings --------------------------------------------------------------------------


@dataclass
class Timings:
    """Per call kind, the latencies (seconds) of calls started inside the timed window."""

    calls: dict[str, list[float]] = field(default_factory=dict)
    trials: int = 0
    errors: int = 0
    #: Over the timed window, from the servers' ``/metrics``: study row locks taken and
    #: their summed wait and hold seconds (None: not read, e.g. several uvicorn workers,
    #: whose registries are per process).
    locks: dict[str, float] | None = None
    #: CPU seconds the servers (all their processes) used in the timed window.
    server_cpu: float | None = None
    #: Seconds the servers' threads spent runnable but waiting for a core in the window.
    server_runqueue: float | None = None

    def add(self, kind: str, seconds: float) -> None:
        self.calls.setdefault(kind, []).append(seconds)

    def merge(self, other: Timings) -> None:
        for kind, values in other.calls.items():
            self.calls.setdefault(kind, []).extend(values)
        self.trials += other.trials
        self.errors += other.errors


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


@dataclass(frozen=True)
class Window:
    start: float  # loops start (time.time())
    timed_from: float
    end: float


# ---- databases and servers ------------------------------------------------------------


@contextmanager
def database(backend: str, *, migrate: bool = True) -> Iterator[str]:
    """A fresh database on ``backend`` (migrated for tuneforge unless ``migrate`` is false:
    Optuna's tables get a database of their own on the same server); removed afterwards."""
    from tuneforge.api.db.migrate import upgrade

    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="tf-bench-") as folder:
            url = f"sqlite:///{folder}/bench.db"
            upgrade(url)
            yield url
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN.replace("postgresql://", "postgresql+psycopg://"))
    admin = admin.execution_options(isolation_level="AUTOCOMMIT")
    name = f"tf_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def servers(
    url: str, n: int, workers: int = 1, python: str = sys.executable
) -> Iterator[list[str]]:
    """``n`` ``tuneforge serve`` processes on ``url`` started by ``python``, each with
    ``workers`` uvicorn worker processes sharing its port (rate limit off: one trusted
    loadgen)."""
    # rate limit off (one trusted load generator); /metrics readable without a key
    env = {
        **os.environ,
        "TUNEFORGE_RATE_LIMIT_PER_SECOND": "0",
        "TUNEFORGE_PUBLIC_ENDPOINTS": "metrics",
    }
    env.setdefault("TUNEFORGE_ARTIFACT_URL", tempfile.mkdtemp(prefix="tf-bench-art-"))
    procs, urls = [], []
    try:
        for _ in range(n):
            port = _free_port()
            cmd = [python, "-m", "tuneforge.cli", "serve", "--db", url]
            cmd += ["--port", str(port), "--log-level", "warning"]
            if workers > 1:
                cmd += ["--workers", str(workers)]
            procs.append(subprocess.Popen(cmd, env=env))
            urls.append(f"http://127.0.0.1:{port}")
        for u in urls:
            _wait_up(u)
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not start")


# ---- the tuneforge loop -----------------------------------------------------------------


async def _client_loop(
    http: Poster, base: str, sid: int, cid: str, window: Window, seed: int
) -> Timings:
    out = Timings()
    rng = np.random.default_rng(seed)
    api = f"{base}/api/v1/studies/{sid}/trials"

    async def call(kind: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        t0 = time.time()
        status, reply = await http.post(path, body)
        if t0 >= window.timed_from and time.time() <= window.end:
            out.add(kind, time.time() - t0)
        if status >= 400:
            out.errors += 1
            if out.errors <= 3:  # what went wrong, once or twice per client
                print(f"{kind} {status}: {str(reply)[:300]}", file=sys.stderr, flush=True)
        return status, reply

    await asyncio.sleep(max(0.0, window.start - time.time()))
    while time.time() < window.end:
        status, reply = await call("suggest", f"{api}/suggest", {"count": 1, "client_id": cid})
        trials = reply.get("trials") if status == 200 else None
        if not trials:
            await asyncio.sleep(0.01)
            continue
        trial = trials[0]
        value = objective(trial["params"])
        for step in range(int(rng.integers(1, 4))):
            body = {"step": step, "values": {"loss": value + 1.0 / (step + 1)}}
            await call("measure", f"{api}/{trial['number']}/measurements", body)
        done, _ = await call(
            "complete", f"{api}/{trial['number']}/complete", {"values": {"loss": value}}
        )
        if done == 200 and window.timed_from <= time.time() <= window.end:
            out.trials += 1
    return out


async def _tuneforge_load(
    urls: list[str],
    studies: list[int],
    clients: int,
    window: Window,
    *,
    locks: bool = False,
    client: str = "aiohttp",
    headers: dict[str, str] | None = None,
) -> Timings:
    async with (
        Poster(client, clients + 8, headers) as poster,
        httpx.AsyncClient(timeout=60) as http,
    ):
        loops = [
            _client_loop(poster, urls[i % len(urls)], studies[i % len(studies)], f"c{i}", window, i)
            for i in range(clients)
        ]
        watch = asyncio.ensure_future(lock_window(http, urls, window)) if locks else None
        total = Timings()
        for t in await asyncio.gather(*loops):
            total.merge(t)
        if watch is not None:
            total.locks = await watch
        return total


def run_tuneforge(cell: Cell, url: str, seconds: float, warmup: float) -> Timings:
    editor, worker = bench_keys(url) if cell.keys == "worker" else ({}, {})
    with servers(url, cell.servers, cell.workers) as urls:
        n_studies = cell.clients if cell.layout == "many" else 1
        studies = []
        for k in range(n_studies):
            name = f"{cell.algorithm}-{cell.layout}-{cell.clients}-{k}-{uuid.uuid4().hex[:6]}"
            body = spec(name, cell.algorithm)
            r = httpx.post(f"{urls[0]}/api/v1/studies", json=body, headers=editor, timeout=60)
            r.raise_for_status()
            studies.append(int(r.json()["id"]))
        now = time.time() + 1.0
        window = Window(now, now + warmup, now + warmup + seconds)
        locks = cell.workers == 1
        load = _tuneforge_load(
            urls, studies, cell.clients, window, locks=locks, client=cell.client, headers=worker
        )
        cpu = CpuWindow(window.timed_from, window.end)
        timings = asyncio.run(load)
        timings.server_cpu = cpu.seconds()
        timings.server_runqueue = cpu.runqueue_seconds()
        return timings


# ---- the Optuna loop --------------------------------------------------------------------


def _optuna_worker(
    url: str, name: str, sampler: str, seed: int, timing: tuple[float, float], go: Any, q: Any
) -> None:
    """One Optuna client process: set up, report ready, then loop in the shared window."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://"))
    samplers = {
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
    }
    study = optuna.load_study(study_name=name, storage=storage, sampler=samplers[sampler]())
    dists = {f"x{i}": optuna.distributions.FloatDistribution(-5.0, 5.0) for i in range(4)}
    dists["kind"] = optuna.distributions.CategoricalDistribution(["a", "b", "c"])
    out = Timings()
    rng = np.random.default_rng(seed)
    q.put("ready")
    while go.value == 0.0:  # every process imported and connected: start together
        time.sleep(0.01)
    warmup, seconds = timing
    window = Window(go.value, go.value + warmup, go.value + warmup + seconds)
    time.sleep(max(0.0, window.start - time.time()))
    while time.time() < window.end:
        t0 = time.time()
        trial = study.ask(dists)
        timed = t0 >= window.timed_from
        if timed:
            out.add("suggest", time.time() - t0)
        value = objective(trial.params)
        for step in range(int(rng.integers(1, 4))):
            t1 = time.time()
            trial.report(value + 1.0 / (step + 1), step)
            trial.should_prune()
            if timed:
                out.add("measure", time.time() - t1)
        t2 = time.time()
        study.tell(trial, value)
        if timed and time.time() <= window.end:
            out.add("complete", time.time() - t2)
            out.trials += 1
    q.put((out.calls, out.trials, out.errors))


def run_optuna(cell: Cell, url: str, seconds: float, warmup: float) -> Timings:
    """``cell.clients`` processes doing ask -> report -> tell (start-up not timed)."""
    import optuna

    storage = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://"))
    n_studies = cell.clients if cell.layout == "many" else 1
    tag = uuid.uuid4().hex[:6]
    names = [f"optuna-{cell.layout}-{cell.clients}-{k}-{tag}" for k in range(n_studies)]
    for name in names:
        optuna.create_study(study_name=name, storage=storage, direction="minimize")
    ctx = mp.get_context("spawn")
    q, go = ctx.Queue(), ctx.Value("d", 0.0)
    sampler = cell.algorithm.removeprefix("optuna-")
    procs = [
        ctx.Process(
            target=_optuna_worker,
            args=(url, names[i % n_studies], sampler, i, (warmup, seconds), go, q),
        )
        for i in range(cell.clients)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        assert q.get(timeout=600) == "ready"
    go.value = time.time() + 0.5
    total = Timings()
    for _ in procs:
        calls, trials, errors = q.get(timeout=seconds + warmup + 600)
        total.merge(Timings(calls, trials, errors))
    for p in procs:
        p.join()
    return total


# ---- the matrix -------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    backend: str
    servers: int
    layout: str
    algorithm: str
    clients: int
    workers: int = 1
    #: The load generator's HTTP library (class Poster); "-" for the Optuna cells.
    client: str = "aiohttp"
    #: "open" (no API keys) or "worker" (a team's server: worker keys send the trial calls).
    keys: str = "open"


def row_of(cell: Cell, t: Timings, seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "backend": cell.backend,
        "servers": cell.servers if not cell.algorithm.startswith("optuna") else "-",
        "workers": cell.workers if not cell.algorithm.startswith("optuna") else "-",
        "layout": cell.layout,
        "algorithm": cell.algorithm,
        "clients": cell.clients,
        "client": cell.client,
        "keys": cell.keys,
        "trials_per_s": t.trials / seconds,
        "errors": t.errors,
        "cpu_ms_per_trial": (
            t.server_cpu / t.trials * 1000 if t.server_cpu is not None and t.trials else "-"
        ),
        "runq_per_cpu": (
            t.server_runqueue / t.server_cpu
            if t.server_runqueue is not None and t.server_cpu
            else "-"
        ),
    }
    for kind in ("suggest", "measure", "complete"):
        values = t.calls.get(kind, [])
        row[f"{kind}_p50_ms"] = pct(values, 50)
        row[f"{kind}_p99_ms"] = pct(values, 99)
    counted = t.locks is not None and t.locks["count"] > 0
    if t.locks is not None and counted:
        row["locks_per_s"] = t.locks["count"] / seconds
        row["lock_wait_ms"] = t.locks["wait"] / t.locks["count"] * 1000
        row["lock_hold_ms"] = t.locks["hold"] / t.locks["count"] * 1000
        row["lock_busy_pct"] = t.locks["hold"] / seconds * 100  # summed over the studies
    else:  # Optuna, SQLite (no row lock) and several uvicorn workers (per-process registries)
        row.update(locks_per_s="-", lock_wait_ms="-", lock_hold_ms="-", lock_busy_pct="-")
    batches = t.locks.get("batches", 0.0) if t.locks is not None else 0.0
    for phase in PHASES:  # mean per batch of the algorithm (none: random inside its claim)
        row[f"{phase}_ms"] = t.locks[phase] / batches * 1000 if t.locks and batches else "-"
    # fits thrown away because their claim found the snapshot stale (one server process)
    row["stale_claims"] = int(t.locks["stale"]) if t.locks is not None and counted else "-"
    return row


def run_matrix(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for backend in args.backends:
        with database(backend) as url:
            grid = itertools.product(
                args.servers, args.server_workers, args.layouts, args.algorithms, args.clients,
                args.http_client,
            )  # fmt: skip
            for servers_n, workers, layout, algorithm, clients, client in grid:
                cell = Cell(
                    backend, servers_n, layout, algorithm, clients, workers, client, args.keys
                )
                t = run_tuneforge(cell, url, args.seconds, args.warmup)
                rows.append(row_of(cell, t, args.seconds))
                print(json.dumps(rows[-1]), flush=True)
        if backend == "postgresql" and args.optuna:
            with database(backend, migrate=False) as url:  # same server, its own tables
                for layout in args.layouts:
                    for sampler in args.optuna:
                        for clients in args.optuna_clients or args.clients:
                            cell = Cell(backend, 0, layout, f"optuna-{sampler}", clients, 1, "-")
                            t = run_optuna(cell, url, args.seconds, args.warmup)
                            rows.append(row_of(cell, t, args.seconds))
                            print(json.dumps(rows[-1]), flush=True)
    return rows


# ---- report -------------------------------------------------------------------------------


def _f(v: Any) -> str:
    if isinstance(v, float):
        return "-" if v != v else (f"{v:.1f}" if v < 1000 else f"{v:.0f}")
    return str(v)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_f(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


LOAD_COLUMNS = [
    "backend", "servers", "workers", "layout", "algorithm", "clients", "client", "keys",
    "trials_per_s", "errors", "cpu_ms_per_trial", "runq_per_cpu",
    "suggest_p50_ms", "suggest_p99_ms", "measure_p50_ms", "measure_p99_ms",
    "complete_p50_ms", "complete_p99_ms", "locks_per_s", "lock_wait_ms", "lock_hold_ms",
    "lock_busy_pct", "snapshot_ms", "fit_ms", "claim_ms", "stale_claims",
]  # fmt: skip
LARGE_COLUMNS = [
    "backend", "layout", "algorithm", "clients", "trials_per_s", "cold_suggest_ms",
    "suggest_p50_ms", "suggest_p99_ms", "complete_p99_ms", "snapshot_ms", "fit_ms",
    "claim_ms", "stale_claims", "get_study_ms", "page_first_ms", "page_deep_ms",
    "list_studies_ms", "fill_s",
]  # fmt: skip


def report(
    args: argparse.Namespace, load: list[dict[str, Any]], large: list[dict[str, Any]]
) -> str:
    head = [
        f"- command: `python -m bench.service {' '.join(sys.argv[1:])}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"- timed window {args.seconds:g} s after {args.warmup:g} s of warm-up per cell",
    ]
    parts = ["\n".join(head)]
    if load:
        parts.append("### Closed loop\n\n" + table(load, LOAD_COLUMNS))
    if large:
        parts.append("### Large studies\n\n" + table(large, LARGE_COLUMNS))
    return "\n\n".join(parts) + "\n"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke-sized run")
    p.add_argument("--clients", type=int, nargs="*", default=[1, 8, 32, 128])
    p.add_argument("--algorithms", nargs="+", default=["random", "tpe", "auto"])
    p.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    p.add_argument("--servers", type=int, nargs="+", default=[1, 2])
    p.add_argument(
        "--server-workers",
        type=int,
        nargs="+",
        default=[1],
        help="uvicorn worker processes per server (tuneforge serve --workers)",
    )
    p.add_argument("--layouts", nargs="+", default=["one", "many"])
    p.add_argument(
        "--http-client",
        nargs="+",
        choices=["aiohttp", "httpx"],
        default=["aiohttp"],
        help="the load generator's HTTP library (it shares the cores with the server)",
    )
    p.add_argument(
        "--keys",
        choices=["open", "worker"],
        default="open",
        help="worker: a server with API keys, an editor key creates the studies and worker "
        "keys send the trial calls (closed-loop cells; large studies stay open)",
    )
    p.add_argument("--optuna", nargs="*", default=["random", "tpe"], help="samplers; none: skip")
    p.add_argument("--optuna-clients", type=int, nargs="*", default=None)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--large", type=int, nargs="*", default=[1000, 10_000, 100_000])
    p.add_argument("--large-algorithms", nargs="+", default=["random", "tpe"])
    p.add_argument("--large-backends", nargs="+", default=["postgresql"])
    p.add_argument("--large-clients", type=int, default=8)
    p.add_argument("--json", help="write the raw rows here")
    p.add_argument("--out", help="write the markdown report here")
    args = p.parse_args(argv)
    if args.quick:  # explicit flags still win over the quick defaults
        given = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:])}
        quick = {
            "clients": [1, 8], "algorithms": ["random"], "backends": ["sqlite"],
            "servers": [1], "layouts": ["one"], "optuna": [], "seconds": 3.0,
            "warmup": 1.0, "large": [1000], "large_backends": ["sqlite"],
        }  # fmt: skip
        for key, value in quick.items():
            if f"--{key.replace('_', '-')}" not in given:
                setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    load = run_matrix(args) if args.clients and args.algorithms else []
    if args.large:
        from .service_large import run_large  # it builds on this module

        large = run_large(args)
    else:
        large = []
    text = report(args, load, large)
    print(text)
    write_outputs(text, {"load": load, "large": large}, args.json, args.out)


def write_outputs(text: str, raw: Any, json_path: str | None, out_path: str | None) -> None:
    """Write the raw rows to ``json_path`` and the report to ``out_path`` (each if given)."""
    if json_path:
        with open(json_path, "w") as f:
            json.dump(raw, f, indent=1)
    if out_path:
        with open(out_path, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
