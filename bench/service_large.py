"""Large studies for :mod:`bench.service` (``--large``): a study pre-filled with n
completed trials (written through the lifecycle module in one transaction, as
``POST .../trials`` would, only faster), then ``--large-clients`` clients for the timed
window, plus the cold first suggest and the cost of a study read and of trial pages."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import time
import uuid
from typing import Any

import httpx
import numpy as np

from .service import Cell, Window, _tuneforge_load, database, objective, row_of, servers, spec


def prefill(url: str, algorithm: str, n: int) -> int:
    """A study with ``n`` completed trials, written through the lifecycle module."""
    from tuneforge.api.db.engine import Database
    from tuneforge.api.db.repository import get_study_row, utcnow
    from tuneforge.api.services.lifecycle import finish, new_trial
    from tuneforge.api.services.studies import insert_study
    from tuneforge.core.study import parse_study_spec
    from tuneforge.core.trials import TrialState

    db = Database(url)
    rng = np.random.default_rng(n)
    name = f"large-{algorithm}-{n}-{uuid.uuid4().hex[:6]}"
    with db.write() as session:
        study, _ = insert_study(session, parse_study_spec(spec(name, algorithm)))
        sid = study.id
    done = 0
    while done < n:
        with db.write() as session:
            study = get_study_row(session, sid, lock=True)
            now = utcnow()
            for _ in range(min(5000, n - done)):
                params = {f"x{i}": float(rng.uniform(-5, 5)) for i in range(4)}
                params["kind"] = str(rng.choice(["a", "b", "c"]))
                row = new_trial(session, study, params, now)
                row.values = {"loss": objective(params)}
                finish(study, row, TrialState.COMPLETED, now)
                done += 1
    db.dispose()
    return sid


def page_costs(base: str, sid: int, n: int, reps: int = 20) -> dict[str, float]:
    """Median ms of a study read, the first trial page and one near the end (100 trials)."""
    from tuneforge.api.schemas.common import encode_page_token

    out = {}
    deep = encode_page_token(max(0, n - 150))
    with httpx.Client(base_url=f"{base}/api/v1", timeout=120) as http:
        for label, path, params in (
            ("get_study_ms", f"/studies/{sid}", {}),
            ("page_first_ms", f"/studies/{sid}/trials", {"page_size": 100}),
            ("page_deep_ms", f"/studies/{sid}/trials", {"page_size": 100, "page_token": deep}),
            ("list_studies_ms", "/studies", {"page_size": 50}),
        ):
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                http.get(path, params=params).raise_for_status()
                times.append(time.perf_counter() - t0)
            out[label] = statistics.median(times) * 1000
    return out


def run_large(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for backend in args.large_backends:
        for n in args.large:
            for algorithm, workers in itertools.product(args.large_algorithms, args.server_workers):
                with database(backend) as url:
                    t0 = time.time()
                    sid = prefill(url, algorithm, n)
                    fill = time.time() - t0
                    with servers(url, 1, workers) as urls:
                        with httpx.Client(timeout=600) as http:  # first suggest: cold caches
                            t1 = time.perf_counter()
                            r = http.post(
                                f"{urls[0]}/api/v1/studies/{sid}/trials/suggest",
                                json={"client_id": "cold"},
                            )
                            cold = (time.perf_counter() - t1) * 1000
                            if r.status_code != 200:
                                raise RuntimeError(f"cold suggest: {r.status_code} {r.text[:500]}")
                            trial = r.json()["trials"][0]
                            http.post(
                                f"{urls[0]}/api/v1/studies/{sid}/trials/{trial['number']}/complete",
                                json={"values": {"loss": objective(trial["params"])}},
                            )
                        now = time.time() + 1.0
                        window = Window(now, now + args.warmup, now + args.warmup + args.seconds)
                        clients = args.large_clients
                        t = asyncio.run(
                            _tuneforge_load(urls, [sid], clients, window, locks=workers == 1)
                        )
                        cell = Cell(backend, 1, f"large-{n}", algorithm, clients, workers=workers)
                        row = row_of(cell, t, args.seconds)
                        row.update(page_costs(urls[0], sid, n), cold_suggest_ms=cold, fill_s=fill)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    return rows
