"""One run of the early-stopping benchmark: a (task, method, seed, workers) at a fixed budget
of training resource.

The budget is ``configs * MAX_STEPS`` steps: what full-budget random search
spends on ``configs`` configurations. Every worker takes one step of resource
from a shared :class:`Budget` before it trains that step, and stops when the
budget is gone, so every method spends exactly the same resource. A resumed
trial pays only for the steps it trains after resuming.

tuneforge methods go through the real service: the app in this process
(:func:`local_server`: ``create_app`` under uvicorn on a loopback port, over a
fresh SQLite file and checkpoint directory, as embedded mode runs it) and one
SDK client (:class:`tuneforge.Client`) per worker thread. A worker reports every step; when the reply says stop it saves the
model with ``trial.save_checkpoint`` and completes the trial; a promoted trial
comes back from suggest with ``resume_from_step`` and the worker loads the
model with ``trial.load_checkpoint()``, on whichever worker thread got it.
Optuna runs the same worker loop on an in-memory study (ask / report /
should_prune / tell).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from .es_tasks import FIDELITY, MAX_STEPS, METRIC, REDUCTION_FACTOR, Task

#: Method name -> (tuneforge algorithm, early_stopping) for methods run through the service.
TUNEFORGE_METHODS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "random": ("random", None),
    "tf-median": ("tpe", {"rule": "median"}),
    "tf-asha": ("tpe", {"rule": "asha", "reduction_factor": REDUCTION_FACTOR}),
    "tf-hyperband": ("tpe", {"rule": "hyperband", "reduction_factor": REDUCTION_FACTOR}),
    "tf-bohb": ("tpe", {"rule": "bohb", "reduction_factor": REDUCTION_FACTOR}),
    "tf-asha-leader": (
        "tpe",
        {"rule": "asha", "reduction_factor": REDUCTION_FACTOR, "keep_leader": True},
    ),
    "tf-bohb-leader": (
        "tpe",
        {"rule": "bohb", "reduction_factor": REDUCTION_FACTOR, "keep_leader": True},
    ),
    "tf-auto": ("auto", None),
}
OPTUNA_METHODS = ("optuna-sha", "optuna-hyperband")
METHODS = (*TUNEFORGE_METHODS, *OPTUNA_METHODS)
#: Seconds a worker waits before asking again when suggest has no trial for it right now.
IDLE_WAIT = 0.02


class Budget:
    """The run's training resource, in steps, shared by its workers."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.spent = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take one step of resource; ``False`` once the budget is spent."""
        with self._lock:
            if self.spent >= self.total:
                return False
            self.spent += 1
            return True

    @property
    def left(self) -> bool:
        return self.spent < self.total


@dataclass
class RunLog:
    """What one run did. ``curve``: ``(resource spent, score)`` each time a configuration
    finished training to ``MAX_STEPS``, in the order the results became known;
    ``any_curve``: the same after every step of any configuration (any trained model)."""

    task: str
    method: str
    seed: int
    workers: int
    budget: int
    curve: list[tuple[int, float]] = field(default_factory=list)
    any_curve: list[tuple[int, float]] = field(default_factory=list)
    steps: int = 0
    configs: int = 0
    resumes: int = 0
    busy_seconds: float = 0.0
    wall_seconds: float = 0.0
    #: CPU time of this process during the run (server, clients and training together).
    cpu_seconds: float = 0.0
    checkpoint_bytes: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Recorder:
    """Thread-safe bookkeeping the workers of one run share."""

    def __init__(self, log: RunLog, budget: Budget) -> None:
        self.log = log
        self.budget = budget
        self._lock = threading.Lock()

    def started(self, resumed: bool) -> None:
        with self._lock:
            if resumed:
                self.log.resumes += 1
            else:
                self.log.configs += 1

    def trained(self, seconds: float, steps: int, score: float) -> None:
        """One step trained (``seconds`` inside train + validate); note a full-budget result."""
        with self._lock:
            self.log.busy_seconds += seconds
            self.log.steps += 1
            self.log.any_curve.append((self.budget.spent, score))
            if steps == MAX_STEPS:
                self.log.curve.append((self.budget.spent, score))

    def checkpoint(self, size: int) -> None:
        with self._lock:
            self.log.checkpoint_bytes += size

    def error(self, text: str) -> None:
        with self._lock:
            self.log.errors.append(text)


def train_step(task: Task, model: Any, rec: Recorder) -> float | None:
    """Take one step of resource and train it; ``None`` when the budget is spent."""
    if not rec.budget.take():
        return None
    t0 = time.perf_counter()
    score = task.step(model)
    rec.trained(time.perf_counter() - t0, model.steps, score)
    return score


# ---- tuneforge through the service ---------------------------------------------------------
def study_spec(task: Task, method: str, seed: int) -> dict[str, Any]:
    """The ``POST /studies`` body of a tuneforge method on ``task``."""
    algorithm, rule = TUNEFORGE_METHODS[method]
    spec: dict[str, Any] = {
        "name": f"{task.name}-{method}-{seed}",
        "parameters": list(task.parameters),
        "metrics": [{"name": METRIC, "goal": "maximize"}],
        "algorithm": algorithm,
        "fidelity": dict(FIDELITY),
        "seed": seed,
        "retries": {"max_retries": 0},
    }
    if rule is not None:
        spec["early_stopping"] = rule
    return spec


def tuneforge_worker(url: str, study_id: int, task: Task, seed: int, index: int, rec: Recorder):
    """Suggest, resume or start, train step by step until told to stop, checkpoint, complete."""
    from tuneforge.client import Client

    with Client(url, client_id=f"worker-{index}") as client:
        study = client.get_study(study_id)
        while rec.budget.left:
            trials = study.suggest(1)
            if not trials:
                if study.refresh().state != "active":
                    return
                time.sleep(IDLE_WAIT)  # others are training; a promotion may come
                continue
            if not _run_trial(trials[0], task, seed, rec):
                return


def _run_trial(trial: Any, task: Task, seed: int, rec: Recorder) -> bool:
    """Train one suggested trial; ``False`` when the budget ran out during it."""
    resume = trial.resume_from_step or 0
    if resume:
        model = trial.load_checkpoint()
        if model is None or model.steps != resume:
            raise RuntimeError(f"trial {trial.number}: no checkpoint at step {resume}")
    else:
        model = task.start(trial.params, seed)
    rec.started(resumed=bool(resume))
    score = None
    while model.steps < MAX_STEPS:
        score = train_step(task, model, rec)
        if score is None:
            return False
        if trial.report(model.steps, {METRIC: score}):
            break
    if model.steps < MAX_STEPS:  # paused (it may be promoted) or pruned
        rec.checkpoint(trial.save_checkpoint(model).size_bytes)
    trial.complete({METRIC: score})
    return True


@contextmanager
def local_server() -> Iterator[str]:
    """The tuneforge app under uvicorn in a thread of this process, on a fresh SQLite file
    (checkpoints in a directory beside it); yields its URL.

    What :class:`tuneforge.embedded.EmbeddedServer` does, except that uvicorn binds the
    port itself: the SDK's server hands uvicorn a socket without ``TCP_NODELAY``, and
    every request then waits about 40 ms for a delayed ACK, which would swamp the
    per-step cost being measured here.
    """
    import uvicorn

    from tuneforge.api.app import create_app
    from tuneforge.api.db.migrate import prepare_database
    from tuneforge.api.settings import Settings

    with tempfile.TemporaryDirectory(prefix="tuneforge-es-") as tmp:
        db_url = f"sqlite:///{os.path.join(tmp, 'bench.db')}"
        prepare_database(db_url, migrate=True)
        app = create_app(Settings(db_url=db_url, migrate=False).for_local_user())
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="tuneforge-es-server", daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the benchmark's tuneforge server did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=15)


def run_tuneforge(task: Task, method: str, seed: int, configs: int, workers: int) -> RunLog:
    """One run of a tuneforge method through the real service, ``workers`` threads."""
    from tuneforge.client import Client

    budget = Budget(configs * MAX_STEPS)
    log = RunLog(task.name, method, seed, workers, budget.total)
    rec = Recorder(log, budget)
    with local_server() as url:
        with Client(url, client_id="bench") as client:
            study_id = client.create_study(study_spec(task, method, seed)).id

        def work(i: int) -> None:
            tuneforge_worker(url, study_id, task, seed, i, rec)

        _run_threads(work, workers, log, rec)
    return log


# ---- Optuna ---------------------------------------------------------------------------------
def optuna_study(method: str, seed: int) -> Any:
    """TPE (seeded) with Optuna's successive-halving or Hyperband pruner, on our rungs."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = optuna.samplers.TPESampler(seed=seed)
    if method == "optuna-sha":
        pruner: Any = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=REDUCTION_FACTOR
        )
    elif method == "optuna-hyperband":
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=MAX_STEPS, reduction_factor=REDUCTION_FACTOR
        )
    else:
        raise ValueError(f"unknown Optuna method {method!r}")
    return optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)


def optuna_worker(study: Any, task: Task, seed: int, rec: Recorder) -> None:
    """Ask, train step by step while the pruner lets the trial go on, tell."""
    import optuna

    distributions = task.optuna_distributions()
    while rec.budget.left:
        trial = study.ask(distributions)
        model = task.start(trial.params, seed)
        rec.started(resumed=False)
        pruned = False
        score = None
        while model.steps < MAX_STEPS:
            score = train_step(task, model, rec)
            if score is None:
                return
            trial.report(score, model.steps)
            if model.steps < MAX_STEPS and trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, score)


def run_optuna(task: Task, method: str, seed: int, configs: int, workers: int) -> RunLog:
    """One run of an Optuna pruner; ``workers`` threads share the in-memory study."""
    budget = Budget(configs * MAX_STEPS)
    log = RunLog(task.name, method, seed, workers, budget.total)
    rec = Recorder(log, budget)
    study = optuna_study(method, seed)
    _run_threads(lambda _i: optuna_worker(study, task, seed, rec), workers, log, rec)
    return log


# ---- common ---------------------------------------------------------------------------------
def _run_threads(work: Callable[[int], None], workers: int, log: RunLog, rec: Recorder) -> None:
    """``work(i)`` on ``workers`` threads (inline for one); the wall time goes in ``log``."""

    def guarded(i: int) -> None:
        try:
            work(i)
        except Exception as exc:  # reported in the run's results, never silently lost
            rec.error(f"worker {i}: {type(exc).__name__}: {exc}")

    t0, c0 = time.perf_counter(), time.process_time()
    if workers == 1:
        guarded(0)
    else:
        threads = [threading.Thread(target=guarded, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    log.wall_seconds = time.perf_counter() - t0
    log.cpu_seconds = time.process_time() - c0


def run(task: Task, method: str, seed: int, configs: int, workers: int = 1) -> RunLog:
    """One run of ``method`` (see :data:`METHODS`)."""
    if method in TUNEFORGE_METHODS:
        return run_tuneforge(task, method, seed, configs, workers)
    return run_optuna(task, method, seed, configs, workers)


def best_curve(curve: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The best score so far at each point of ``curve``."""
    out: list[tuple[int, float]] = []
    best = float("-inf")
    for spent, score in sorted(curve, key=lambda p: p[0]):
        best = max(best, score)
        out.append((spent, best))
    return out


def best_at(curve: list[tuple[int, float]], resource: int) -> float | None:
    """The best full-budget score known once ``resource`` steps were spent (``None``: none yet)."""
    scores = [score for spent, score in curve if spent <= resource]
    return max(scores) if scores else None


def first_reaching(curve: list[tuple[int, float]], target: float) -> int | None:
    """The resource at which the best score first reached ``target`` (``None``: never)."""
    for spent, best in best_curve(curve):
        if best >= target:
            return spent
    return None


def summary(logs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals of a list of run dicts (for the log line of a finished run)."""
    return {
        "runs": len(logs),
        "steps": sum(int(x["steps"]) for x in logs),
    }
