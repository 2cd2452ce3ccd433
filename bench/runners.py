"""One benchmark run = one (problem, optimizer, seed): tuneforge through its HTTP API,
or Optuna through ask/tell. Every run is deterministic given its seed.

tuneforge runs drive the real FastAPI app (``create_app``) on a fresh, migrated
SQLite file through ``fastapi.testclient.TestClient``: every suggestion is a
``POST /studies/{id}/trials/suggest`` and every result a ``POST .../complete``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .problems import Problem

#: Optimizer names: ``tf-<algorithm>`` goes through the tuneforge API, ``optuna-*`` through Optuna.
TUNEFORGE_PREFIX = "tf-"
OPTUNA_SAMPLERS = ("optuna-tpe", "optuna-tpe-ind", "optuna-gp", "optuna-random")
#: Peers driven through their own ask/tell (bench/peers.py; the ``bench`` extra).
OTHER_PEERS = ("smac", "ax")
PARALLEL_WORKERS = 8
METRIC = "objective"


@dataclass
class RunResult:
    problem: str
    optimizer: str
    seed: int
    mode: str  # "seq" | "par<workers>", e.g. "par8"
    values: list[float]  # objective of each trial, in completion order
    suggest_seconds: list[float]  # wall time of each suggest request / ask()
    seconds: float
    evaluations: int  # distinct evaluations (the rest were memoized)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> float:
        return float(np.min(self.values))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_each(
    tasks: Sequence[Any],
    execute: Callable[[Any], dict[str, Any]],
    note: Callable[[Any, dict[str, Any]], None],
    workers: int,
    init_worker: Callable[[], None],
) -> None:
    """``execute`` every task (in this process, or in ``workers`` processes started with
    ``init_worker``) and ``note`` each task with its result as it finishes."""
    if workers <= 1:
        init_worker()
        for task in tasks:
            note(task, execute(task))
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=init_worker) as pool:
        futures = {pool.submit(execute, t): t for t in tasks}
        for fut in as_completed(futures):
            note(futures[fut], fut.result())


def limit_threads() -> None:
    """One BLAS / OpenMP / torch thread per process: the pool runs two processes on two cores.

    threadpoolctl only limits the libraries already loaded, and scipy ships its own
    OpenBLAS (what tuneforge's GP uses through ``scipy.linalg``) next to numpy's, plus
    scikit-learn's OpenMP runtime; so load them all first. The thread count changes the
    floating-point reduction order, hence a GP's trajectory: a run is reproducible for a
    given thread setting, and this keeps the setting the same in every run.
    """
    import scipy.linalg  # noqa: F401
    import sklearn  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - only Optuna's GPSampler needs torch
        pass


class Memo:
    """Evaluations memoized by exact parameters within one run."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.cache: dict[tuple[tuple[str, str], ...], float] = {}

    def __call__(self, params: Mapping[str, Any]) -> float:
        key = tuple(sorted((k, repr(v)) for k, v in params.items()))
        if key not in self.cache:
            self.cache[key] = self.problem.evaluate(params)
        return self.cache[key]


# ---- tuneforge through the API ------------------------------------------------------------
class TuneforgeAPI:
    """A TestClient on the real app and a fresh SQLite file; use :func:`tuneforge_api`."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        response = self.client.post(f"/api/v1{path}", json=body)
        if response.status_code >= 300:
            raise RuntimeError(f"POST {path} -> {response.status_code}: {response.text}")
        return response.json()

    def create_study(
        self, problem: Problem, algorithm: str, seed: int, max_trials: int | None, name: str = ""
    ) -> int:
        body = {
            "name": name or f"{problem.name}-{algorithm}-{seed}",
            "parameters": list(problem.parameters),
            "metrics": [{"name": METRIC, "goal": "minimize"}],
            "algorithm": algorithm,
            "max_trials": max_trials,
            "seed": seed,
        }
        return int(self._post("/studies", body)["id"])

    def suggest(
        self, study: int, client_id: str, count: int = 1
    ) -> tuple[list[tuple[int, dict[str, Any]]], float]:
        t0 = time.perf_counter()
        out = self._post(
            f"/studies/{study}/trials/suggest", {"count": count, "client_id": client_id}
        )
        elapsed = time.perf_counter() - t0
        return [(int(t["number"]), dict(t["params"])) for t in out["trials"]], elapsed

    def complete(self, study: int, number: int, value: float) -> None:
        self._post(f"/studies/{study}/trials/{number}/complete", {"values": {METRIC: value}})

    def add_completed(self, study: int, params: Mapping[str, Any], value: float) -> None:
        body = {"params": dict(params), "state": "completed", "values": {METRIC: value}}
        self._post(f"/studies/{study}/trials", body)


@contextmanager
def tuneforge_api() -> Iterator[TuneforgeAPI]:
    """The real FastAPI app on a temporary, migrated SQLite database."""
    from fastapi.testclient import TestClient

    from tuneforge.api.app import create_app
    from tuneforge.api.db.migrate import upgrade
    from tuneforge.api.settings import Settings

    with tempfile.TemporaryDirectory(prefix="tuneforge-bench-") as tmp:
        url = f"sqlite:///{os.path.join(tmp, 'bench.db')}"
        upgrade(url)
        settings = Settings(db_url=url, reconcile_interval_seconds=0, broker_url="")
        with TestClient(create_app(settings)) as client:
            yield TuneforgeAPI(client)


def run_tuneforge(problem: Problem, algorithm: str, seed: int, budget: int) -> RunResult:
    """Sequential: suggest one trial, evaluate it, complete it; ``budget`` times."""
    memo = Memo(problem)
    values: list[float] = []
    latencies: list[float] = []
    t0 = time.perf_counter()
    with tuneforge_api() as api:
        study = api.create_study(problem, algorithm, seed, budget)
        while len(values) < budget:
            trials, dt = api.suggest(study, "bench-worker")
            if not trials:
                raise RuntimeError(f"{problem.name}/{algorithm}: no trial after {len(values)}")
            latencies.append(dt)
            number, params = trials[0]
            value = memo(params)
            api.complete(study, number, value)
            values.append(value)
    name = TUNEFORGE_PREFIX + algorithm
    elapsed = time.perf_counter() - t0
    return RunResult(problem.name, name, seed, "seq", values, latencies, elapsed, len(memo.cache))


def simulate_workers(
    ask: Callable[[str], tuple[Any, Mapping[str, Any]]],
    tell: Callable[[Any, float], None],
    evaluate: Callable[[Mapping[str, Any]], float],
    seed: int,
    budget: int,
    workers: int = PARALLEL_WORKERS,
) -> tuple[list[float], list[float]]:
    """``workers`` simulated workers keep that many trials in flight, ``budget`` in all.

    ``ask(worker)`` hands a worker a trial and returns ``(handle, params)``; the trial
    to finish next is drawn from the in-flight ones by a generator seeded with
    ``(seed, workers)``, evaluated and ``tell(handle, value)``-ed, and its worker
    asks again. Every optimizer sees the same completion order for a seed. Returns
    the values in completion order and the wall time of every ask.
    """
    rng = np.random.default_rng([seed, workers])
    values: list[float] = []
    latencies: list[float] = []
    in_flight: dict[str, tuple[Any, Mapping[str, Any]]] = {}
    issued = 0

    def hand_out(worker: str) -> None:
        nonlocal issued
        t0 = time.perf_counter()
        in_flight[worker] = ask(worker)
        latencies.append(time.perf_counter() - t0)
        issued += 1

    for w in range(min(workers, budget)):
        hand_out(f"worker-{w}")
    while in_flight:
        names = sorted(in_flight)
        worker = names[int(rng.integers(len(names)))]
        handle, params = in_flight.pop(worker)
        value = evaluate(params)
        tell(handle, value)
        values.append(value)
        if issued < budget:
            hand_out(worker)
    return values, latencies


def run_tuneforge_parallel(
    problem: Problem, algorithm: str, seed: int, budget: int, workers: int = PARALLEL_WORKERS
) -> RunResult:
    """:func:`simulate_workers` through the API, one client_id per worker."""
    memo = Memo(problem)
    t0 = time.perf_counter()
    with tuneforge_api() as api:
        study = api.create_study(problem, algorithm, seed, budget)

        def ask(worker: str) -> tuple[int, dict[str, Any]]:
            trials, _dt = api.suggest(study, worker)
            if len(trials) != 1:
                raise RuntimeError(f"{problem.name}: worker {worker} got {len(trials)} trials")
            return trials[0]

        def tell(number: int, value: float) -> None:
            api.complete(study, number, value)

        values, latencies = simulate_workers(ask, tell, memo, seed, budget, workers)
    name = TUNEFORGE_PREFIX + algorithm
    elapsed = time.perf_counter() - t0
    mode = parallel_mode(workers)
    return RunResult(problem.name, name, seed, mode, values, latencies, elapsed, len(memo.cache))


# ---- Optuna ---------------------------------------------------------------------------------
#: What each peer needs beyond the ``dev`` extra, and how to install it.
PEER_REQUIREMENTS = {
    "optuna-gp": ("torch", 'pip install -e ".[dev,bench]" (torch, CPU build)'),
    "smac": ("smac", 'pip install -e ".[dev,bench]" (smac)'),
    "ax": ("ax", 'pip install -e ".[dev,bench]" (ax-platform)'),
}


def missing_requirement(name: str) -> str | None:
    """Why optimizer ``name`` cannot run in this environment, or ``None`` when it can."""
    import importlib.util

    need = PEER_REQUIREMENTS.get(name)
    if need is None or importlib.util.find_spec(need[0]) is not None:
        return None
    return f"{name} needs {need[0]}, which is not installed: {need[1]}"


def optuna_sampler(name: str, seed: int, parallel: bool = False) -> Any:
    """Optuna's sampler by benchmark name; ``parallel``: TPE with its constant-liar option,
    which Optuna documents for trials running in parallel (GPSampler models running trials
    by itself, with q-batch log EI)."""
    import optuna

    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
    if name == "optuna-tpe-ind":  # Optuna 5's default TPE is multivariate on one objective
        return optuna.samplers.TPESampler(seed=seed, multivariate=False, constant_liar=parallel)
    if name == "optuna-gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "optuna-random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown optimizer {name!r}")


def quiet_optuna() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def run_optuna(problem: Problem, sampler_name: str, seed: int, budget: int) -> RunResult:
    import optuna

    quiet_optuna()
    memo = Memo(problem)
    values: list[float] = []
    latencies: list[float] = []
    distributions = problem.optuna_distributions()
    t0 = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna_sampler(sampler_name, seed))
    for _ in range(budget):
        ts = time.perf_counter()
        trial = study.ask(distributions)
        latencies.append(time.perf_counter() - ts)
        value = memo(trial.params)
        study.tell(trial, value)
        values.append(value)
    elapsed = time.perf_counter() - t0
    return RunResult(
        problem.name, sampler_name, seed, "seq", values, latencies, elapsed, len(memo.cache)
    )


def run_optuna_parallel(
    problem: Problem, sampler_name: str, seed: int, budget: int, workers: int = PARALLEL_WORKERS
) -> RunResult:
    """:func:`simulate_workers` on one Optuna study: asked trials stay running until told."""
    import optuna

    quiet_optuna()
    memo = Memo(problem)
    distributions = problem.optuna_distributions()
    t0 = time.perf_counter()
    sampler = optuna_sampler(sampler_name, seed, parallel=True)
    study = optuna.create_study(direction="minimize", sampler=sampler)

    def ask(_worker: str) -> tuple[Any, dict[str, Any]]:
        trial = study.ask(distributions)
        return trial, trial.params

    values, latencies = simulate_workers(ask, study.tell, memo, seed, budget, workers)
    elapsed = time.perf_counter() - t0
    mode = parallel_mode(workers)
    return RunResult(
        problem.name, sampler_name, seed, mode, values, latencies, elapsed, len(memo.cache)
    )


def parallel_mode(workers: int) -> str:
    """The run mode of ``workers`` simulated workers: ``"par8"`` for 8."""
    return f"par{workers}"


def mode_workers(mode: str) -> int:
    """Trials in flight in a run mode: 1 for ``"seq"``, ``N`` for ``"parN"`` (``N >= 2``)."""
    if mode == "seq":
        return 1
    digits = mode[3:] if mode.startswith("par") else ""
    if not digits.isdigit() or int(digits) < 2:
        raise ValueError(f"unknown mode {mode!r}: seq, or parN with N >= 2 workers")
    return int(digits)


def run(problem: Problem, optimizer: str, seed: int, budget: int, mode: str = "seq") -> RunResult:
    """One run: ``mode`` ``"seq"`` or ``"parN"`` (:func:`simulate_workers` with N workers)."""
    workers = mode_workers(mode)
    if optimizer in OTHER_PEERS:
        if workers > 1:
            raise ValueError(f"{optimizer} runs sequentially only")
        from .peers import run_peer

        return run_peer(problem, optimizer, seed, budget)
    tuneforge = optimizer.startswith(TUNEFORGE_PREFIX)
    algorithm = optimizer[len(TUNEFORGE_PREFIX) :] if tuneforge else optimizer
    if workers > 1:
        parallel = run_tuneforge_parallel if tuneforge else run_optuna_parallel
        return parallel(problem, algorithm, seed, budget, workers)
    return (run_tuneforge if tuneforge else run_optuna)(problem, algorithm, seed, budget)


# ---- batch quality --------------------------------------------------------------------------
#: Two points of a batch closer than this (Euclidean, unit cube: 1% of a side) are near-duplicates.
NEAR_DUPLICATE = 0.01


def batch_quality(
    problem: Problem, seed: int, history: int = 20, batch: int = 8, algorithm: str = "auto"
) -> dict[str, Any]:
    """``history`` sequential ``auto`` trials, then one ``count=batch`` suggest: the batch's
    minimum pairwise distance in the unit cube, its duplicates, its distance to the history."""
    from tuneforge.core.space import SearchSpace

    space = SearchSpace.from_list(list(problem.parameters))
    memo, seen = Memo(problem), []
    with tuneforge_api() as api:
        study = api.create_study(problem, algorithm, seed, None)
        for _ in range(history):
            trials, _dt = api.suggest(study, "bench-worker")
            number, params = trials[0]
            api.complete(study, number, memo(params))
            seen.append(params)
        trials, dt = api.suggest(study, "bench-batch", count=batch)
    points = [p for _, p in trials]
    U = np.array([space.encode(p) for p in points])
    H = np.array([space.encode(p) for p in seen])
    pair = np.linalg.norm(U[:, None, :] - U[None, :, :], axis=-1)
    iu = np.triu_indices(len(points), 1)
    keys = [space.key(p) for p in points]
    seen_keys = {space.key(p) for p in seen}
    return {
        "problem": problem.name,
        "seed": seed,
        "size": len(points),
        "min_pairwise": float(pair[iu].min()) if len(points) > 1 else float("nan"),
        "duplicates": len(keys) - len(set(keys)),
        "near_duplicates": int((pair[iu] < NEAR_DUPLICATE).sum()),
        "repeats_history": sum(k in seen_keys for k in keys),
        "min_to_history": float(np.linalg.norm(U[:, None, :] - H[None], axis=-1).min()),
        "seconds": dt,
        "dim": U.shape[1],
    }


def random_min_pairwise(dim: int, n: int = 8, draws: int = 2000, seed: int = 0) -> float:
    """Median minimum pairwise distance of ``n`` uniform points in ``[0, 1]^dim`` (reference)."""
    rng = np.random.default_rng(seed)
    X = rng.random((draws, n, dim))
    d = np.linalg.norm(X[:, :, None, :] - X[:, None, :, :], axis=-1)
    iu = np.triu_indices(n, 1)
    return float(np.median(d[:, iu[0], iu[1]].min(axis=1)))
