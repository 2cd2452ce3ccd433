"""Per-trial overhead of managed trials on a large uploaded dataset (issue: workers cache data).

Starts the API server (PostgreSQL, Redis broker) and one Celery worker process,
uploads a generated table of ``--rows`` rows, and runs a managed study whose
trials fit a ``HistGradientBoostingClassifier`` pipeline with 3-fold CV. The
single worker runs the trials one after another, so for every trial after the
first::

    wall     = completed_at(trial) - completed_at(previous trial)
    train    = the seconds the worker spent fitting and scoring (its reproducibility record)
    overhead = wall - train   (Celery delivery, suggest, study read, data load from the
                               process cache, measurements, complete)

The first trial also downloads, parses and splits the data (printed separately:
it happens once per worker process and dataset). Prints one row per trial and
the steady-state ratio overhead / train; the target is at most 5 %.

    python -m bench.worker_overhead --pg postgresql://postgres@127.0.0.1:5432/postgres \\
        --redis redis://127.0.0.1:6379/14 --rows 200000 --trials 8
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

TARGET = 0.05


def generated(rows: int, seed: int = 0) -> pd.DataFrame:
    """A churn-like table: 8 numeric columns (one with gaps), 3 text columns (one with
    gaps) and a yes/no target that depends on several of them."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 8))
    numeric[rng.random(rows) < 0.05, 0] = np.nan
    plan = rng.choice(["basic", "pro", "team", "enterprise"], size=rows)
    region = rng.choice([f"r{i}" for i in range(12)], size=rows)
    channel = pd.Series(rng.choice(["web", "store", "phone"], size=rows)).where(
        rng.random(rows) > 0.03, None
    )
    risk = numeric[:, 1] - 0.5 * numeric[:, 2] + np.where(plan == "basic", 0.7, -0.3)
    risk += 0.3 * np.nan_to_num(numeric[:, 0]) * numeric[:, 3]
    target = np.where(rng.random(rows) < 1 / (1 + np.exp(-risk)), "yes", "no")
    frame = pd.DataFrame(numeric, columns=[f"x{i}" for i in range(8)])
    return frame.assign(plan=plan, region=region, channel=channel, churned=target)


def spec(name: str, trials: int) -> dict[str, Any]:
    return {
        "name": name,
        "algorithm": "random",
        "parameters": [
            {"name": "model__learning_rate", "type": "float", "low": 0.03, "high": 0.3,
             "scale": "log"},
            {"name": "model__max_leaf_nodes", "type": "int", "low": 15, "high": 63},
        ],
        "metrics": [{"name": "roc_auc", "goal": "maximize"}],
        "max_trials": trials,
        "max_active_trials": 2,  # one task waits in the broker while the worker trains
        "objective": {
            "kind": "sklearn",
            "dataset": {"source": "uploaded", "name": name},
            "pipeline": {
                "columns": {"numeric": {}, "categorical": {"encode": "ordinal"}},
                "steps": [
                    {
                        "name": "model",
                        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                        "params": {"max_iter": 100, "early_stopping": False},
                    }
                ],
            },
            "scoring": "roc_auc",
            "cv": {"type": "stratified_kfold", "n_splits": 3},
        },
    }  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def database(admin_url: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, dropped afterwards."""
    from sqlalchemy import create_engine, text

    from tuneforge.api.db.engine import normalize_url
    from tuneforge.api.db.migrate import upgrade

    name = f"tuneforge_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def processes(db_url: str, broker: str, workdir: Path) -> Iterator[str]:
    """``tuneforge serve`` and one ``tuneforge worker`` (concurrency 1); yields the URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    env.update(
        TUNEFORGE_BROKER_URL=broker,
        TUNEFORGE_ARTIFACT_URL=str(workdir / "artifacts"),
        TUNEFORGE_DATASET_CACHE_DIR=str(workdir / "worker-cache"),
        TUNEFORGE_SERVER_URL=url,
    )
    cli = [sys.executable, "-m", "tuneforge.cli"]
    serve = [*cli, "serve", "--db", db_url, "--port", str(port), "--log-level", "warning"]
    worker = [*cli, "worker", "--concurrency", "1", "--loglevel", "warning"]
    started = [subprocess.Popen(serve, env=env)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        started.append(subprocess.Popen(worker, env=env, start_new_session=True))
        yield url
    finally:
        for proc in reversed(started):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def measure(url: str, frame: pd.DataFrame, trials: int, workdir: Path) -> dict[str, Any]:
    import tuneforge

    path = workdir / "bench.csv"
    frame.to_csv(path, index=False)
    name = f"overhead-{uuid.uuid4().hex[:6]}"
    with tuneforge.Client(url, timeout=600) as client:
        dataset = client.upload_dataset(path, name=name, target="churned")
        study = client.create_study(spec(name, trials))
        started = time.time()
        study.run()
        while True:
            data = study.refresh().data
            if data.state == "completed":
                break
            time.sleep(1.0)
        rows = sorted(
            (t.data for t in study.trials() if t.data.completed_at is not None),
            key=lambda t: t.completed_at,  # type: ignore[arg-type, return-value]
        )
    out = []
    previous = started
    for t in rows:
        done = t.completed_at.timestamp()  # type: ignore[union-attr]
        train = float(t.metadata["reproducibility"]["train_seconds"])
        out.append({"number": t.number, "wall": done - previous, "train": train})
        previous = done
    return {"dataset": dataset, "trials": out, "size": path.stat().st_size}


def report(result: dict[str, Any], rows: int) -> float:
    trials = result["trials"]
    print(f"dataset: {rows} rows, {result['size'] / 1e6:.1f} MB CSV, sha256 "
          f"{result['dataset'].sha256[:12]}")  # fmt: skip
    print("| trial | wall s | train s | overhead s | overhead / train |")
    print("|---|---|---|---|---|")
    for i, t in enumerate(trials):
        overhead = t["wall"] - t["train"]
        note = " (first: run request, download, parse, split)" if i == 0 else ""
        print(
            f"| {t['number']}{note} | {t['wall']:.2f} | {t['train']:.2f} | {overhead:.2f} | "
            f"{overhead / t['train']:.1%} |"
        )
    steady = trials[1:]
    overhead = sum(t["wall"] - t["train"] for t in steady)
    train = sum(t["train"] for t in steady)
    ratio = overhead / train
    per_trial = [t["wall"] - t["train"] for t in steady]
    print(
        f"steady state ({len(steady)} trials): overhead {overhead:.2f} s / training "
        f"{train:.2f} s = {ratio:.2%} (median {statistics.median(per_trial):.3f} s per trial); "
        f"target <= {TARGET:.0%}: {'met' if ratio <= TARGET else 'NOT met'}"
    )
    first = trials[0]
    print(f"first trial (cold start) overhead: {first['wall'] - first['train']:.2f} s")
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args(argv)
    import redis

    redis.Redis.from_url(args.redis).flushdb()
    frame = generated(args.rows)
    with (
        tempfile.TemporaryDirectory(prefix="tuneforge-bench-") as tmp,
        database(args.pg) as db_url,
        processes(db_url, args.redis, Path(tmp)) as url,
    ):
        result = measure(url, frame, args.trials, Path(tmp))
    redis.Redis.from_url(args.redis).flushdb()
    ratio = report(result, args.rows)
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
