"""How busy the workers of a managed study are (issue: dispatch on completion).

Starts ``tuneforge serve`` on a fresh PostgreSQL database, a Redis server of its own
(``redis-server`` on a free port; or ``--redis``) and ``--workers`` Celery workers of
one training process each, then runs a managed study of random-forest trials (digits,
3-fold CV, 100 to 250 trees: 2 to 5 s each on a 2-core machine) with
``max_active_trials`` equal to the workers. From the server's timestamps::

    wall   = last trial's completed_at - first trial's started_at
    busy   = sum over trials of (completed_at - started_at) / (workers * wall)
    train  = sum of the workers' fit-and-score seconds / (workers * wall)
    steady = busy within the window where every worker had work left: from the start
             of the ``workers``-th trial (all workers up) to the completion after which
             fewer trials remained than workers (the study's tail)
    gap    = per trial after the first ``workers``: started_at - the completed_at that
             freed its slot (dispatch, Celery delivery, the task's study read and suggest)

A worker is idle between a completion and its next trial's start. The target is
busy >= 95 % of the wall time, read on ``steady`` (the start-up of the worker
processes and the study's last trials, when fewer trials remain than workers, are
not the dispatcher's doing; ``busy`` over the whole study is printed beside it).

    nice -n 10 python -m bench.managed_busy --trials 24 --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.worker_overhead import database, free_port, when

TARGET = 0.95


def spec(trials: int, workers: int) -> dict[str, Any]:
    return {
        "name": "managed-busy",
        "algorithm": "random",
        "seed": 0,
        "parameters": [
            {"name": "n_estimators", "type": "int", "low": 100, "high": 250},
            {"name": "max_depth", "type": "int", "low": 8, "high": 30},
        ],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "max_trials": trials,
        "max_active_trials": workers,
        "objective": {
            "kind": "sklearn",
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "dataset": {"source": "sklearn", "name": "digits"},
            "cv": {"type": "stratified_kfold", "n_splits": 3},
            "scoring": "accuracy",
        },
    }


@contextlib.contextmanager
def private_redis(url: str | None) -> Iterator[str]:
    """``url`` when given; otherwise a redis-server of our own on a free port."""
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not on PATH: pass --redis URL")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait()


@contextlib.contextmanager
def processes(db_url: str, broker: str, workers: int, workdir: Path) -> Iterator[str]:
    """``tuneforge serve`` and ``workers`` workers of concurrency 1; yields the URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    env.update(
        TUNEFORGE_BROKER_URL=broker,
        TUNEFORGE_ARTIFACT_URL=str(workdir / "artifacts"),
        TUNEFORGE_SERVER_URL=url,
    )
    cli = [sys.executable, "-m", "tuneforge.cli"]
    serve = [*cli, "serve", "--db", db_url, "--port", str(port), "--log-level", "warning"]
    started = [subprocess.Popen(serve, env=env)]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        for i in range(workers):
            worker = [*cli, "worker", "--concurrency", "1", "--loglevel", "warning"]
            worker += ["--hostname", f"busy{i}@%h"]
            started.append(subprocess.Popen(worker, env=env, start_new_session=True))
        yield url
    finally:
        for proc in reversed(started):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(url: str, trials: int, workers: int) -> list[dict[str, Any]]:
    api = f"{url}/api/v1"
    sid = httpx.post(f"{api}/studies", json=spec(trials, workers), timeout=60).json()["id"]
    assert httpx.post(f"{api}/studies/{sid}/run", timeout=60).status_code == 200
    deadline = time.monotonic() + 60 * 30
    while time.monotonic() < deadline:
        if httpx.get(f"{api}/studies/{sid}", timeout=60).json()["state"] == "completed":
            break
        time.sleep(1.0)
    reply = httpx.get(f"{api}/studies/{sid}/trials", params={"page_size": 1000}, timeout=60)
    return [t for t in reply.json()["trials"] if t["completed_at"] and t["started_at"]]


def summary(trials: list[dict[str, Any]], workers: int) -> dict[str, float]:
    spans = sorted((when(t["started_at"]), when(t["completed_at"])) for t in trials)
    wall = max(e for _, e in spans) - spans[0][0]
    busy = sum(e - s for s, e in spans) / (workers * wall)
    train = sum(float(t["metadata"]["reproducibility"]["train_seconds"]) for t in trials) / (
        workers * wall
    )
    ends = sorted(e for _, e in spans)
    # the k-th trial after the first `workers` takes the slot the k-th completion freed
    gaps = [s - ends[k] for k, (s, _) in enumerate(spans[workers:])]
    lengths = [e - s for s, e in spans]
    low, high = spans[workers - 1][0], ends[len(ends) - workers]
    covered = sum(max(0.0, min(e, high) - max(s, low)) for s, e in spans)
    return {
        "steady": covered / (workers * (high - low)),
        "steady_s": high - low,
        "trials": len(spans),
        "wall_s": wall,
        "busy": busy,
        "train": train,
        "trial_s_min": min(lengths),
        "trial_s_median": statistics.median(lengths),
        "trial_s_max": max(lengths),
        "gap_s_median": statistics.median(gaps),
        "gap_s_max": max(gaps),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default=None, help="a broker URL (default: our own)")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="tuneforge-busy-") as tmp,
        private_redis(args.redis) as broker,
        database(args.pg) as db_url,
        processes(db_url, broker, args.workers, Path(tmp)) as url,
    ):
        result = summary(run(url, args.trials, args.workers), args.workers)
    print("| workers | trials | trial s (min / median / max) | wall s | busy (whole study) "
          "| training | steady window s | busy (steady) "
          "| completion → next start, s (median / max) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.workers} | {result['trials']:.0f} | {result['trial_s_min']:.1f} / "
        f"{result['trial_s_median']:.1f} / {result['trial_s_max']:.1f} | "
        f"{result['wall_s']:.1f} | {result['busy']:.1%} | {result['train']:.1%} | "
        f"{result['steady_s']:.1f} | {result['steady']:.1%} | "
        f"{result['gap_s_median']:.3f} / {result['gap_s_max']:.3f} |"
    )
    met = result["steady"] >= TARGET
    print(f"target busy (steady) >= {TARGET:.0%}: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
