"""Benchmark: tuneforge (through its real HTTP API) vs Optuna 5 TPE / GP vs random search.

    python -m bench.optimizers                  # the full benchmark -> docs/benchmarks.md
    python -m bench.optimizers --quick          # 2 problems, 2 seeds, 15 trials, < 60 s

Independent (problem, optimizer, seed) runs go to a pool of ``--workers``
processes (one BLAS / torch thread each); the suggest-latency measurement runs
afterwards in the main process with the machine otherwise idle. See
docs/benchmarks.md for what every table means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import report
from .problems import Problem, all_problems
from .runners import (
    PARALLEL_WORKERS,
    batch_quality,
    limit_threads,
    missing_requirement,
    mode_workers,
    parallel_mode,
    random_min_pairwise,
    run,
    run_each,
)
from .wide_report import keep_section

DEFAULT_OPTIMIZERS = ("tf-auto", "optuna-tpe", "optuna-gp", "tf-random")
QUICK_PROBLEMS = ("branin-2", "hartmann-6")
QUICK_BUDGET = 15
LATENCY_LEVELS = (50, 100, 200, 1000)
QUICK_LATENCY_LEVELS = (50, 100)
LATENCY_REPS = 5
DEFAULT_SEEDS = 10
SKLEARN_SEEDS = 5
DEFAULT_OUT = "docs/benchmarks.md"
GP_LIKE = ("tf-auto", "tf-gp", "optuna-gp")
#: Optimizers that also run with 8 trials in flight (when tf-auto is benchmarked).
PARALLEL_OPTIMIZERS = ("tf-auto", "optuna-tpe", "optuna-gp")
#: Worker counts of auto's parallel runs (the 8-way runs of the rivals come with 8).
DEFAULT_PARALLEL_WORKERS = (2, 4, PARALLEL_WORKERS)


@dataclass(frozen=True)
class Task:
    kind: str  # "run" | "batch"
    problem: str
    optimizer: str
    seed: int
    budget: int
    mode: str = "seq"

    def cost(self) -> float:
        """A rough relative cost, to start the longest tasks first."""
        per_trial = 2.0 if self.problem in SKLEARN_NAMES else 0.05
        if self.optimizer in GP_LIKE:
            per_trial += 0.3
        if self.optimizer == "optuna-gp" and self.mode != "seq":
            per_trial += 1.0  # q-batch log EI over the running trials
        return self.budget * per_trial


SKLEARN_NAMES = frozenset(n for n, p in all_problems().items() if p.kind == "sklearn")


def execute(task: Task) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    problem = all_problems()[task.problem]
    if task.kind == "batch":
        return {"task": "batch", **batch_quality(problem, task.seed)}
    result = run(problem, task.optimizer, task.seed, task.budget, task.mode)
    return {"task": "run", "kind": problem.kind, **result.to_dict()}


def init_worker() -> None:
    warnings.filterwarnings("ignore")
    limit_threads()


def run_tasks(tasks: Sequence[Task], workers: int, log: Any) -> list[dict[str, Any]]:
    ordered = sorted(tasks, key=lambda t: -t.cost())
    out: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def note(task: Task, res: dict[str, Any]) -> None:
        out.append(res)
        done = f"{len(out)}/{len(ordered)}"
        what = f"best {min(res['values']):.4g}" if res["task"] == "run" else "batch"
        log(
            f"[{time.perf_counter() - t0:7.1f}s] {done:>9} {task.problem} {task.optimizer} "
            f"{task.mode} seed={task.seed}: {what}"
        )

    run_each(ordered, execute, note, workers, init_worker)
    return out


def environment() -> dict[str, str]:
    import numpy
    import optuna
    import scipy
    import sklearn

    try:
        import torch

        torch_version = str(torch.__version__)
    except ImportError:
        torch_version = "not installed"
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(
                line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    dirty = git("status", "--porcelain", "--", "core", "api")
    return {
        "machine": f"{os.cpu_count()} cores, {cpu}",
        "python": platform.python_version(),
        "optuna": optuna.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch_version,
        "tuneforge": git("rev-parse", "--short", "HEAD")
        + (" + uncommitted changes in core/ or api/" if dirty else ""),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.optimizers", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--quick", action="store_true", help="2 problems, 2 seeds, 15 trials, no sklearn"
    )
    ap.add_argument(
        "--seeds", type=int, help="seeds 0..N-1 of the synthetic and mixed problems (default 10)"
    )
    ap.add_argument(
        "--sklearn-seeds",
        type=int,
        help="seeds of the scikit-learn tasks, whose runs cost minutes (default 5)",
    )
    ap.add_argument(
        "--out",
        help=f"markdown report (default: {DEFAULT_OUT} for the full, unfiltered benchmark; "
        "otherwise only printed)",
    )
    ap.add_argument("--json", help="also write every run's raw results here")
    ap.add_argument("--problems", nargs="+", help="problem names (default: all; quick: 2)")
    ap.add_argument(
        "--optimizers",
        nargs="+",
        help=f"default: {' '.join(DEFAULT_OPTIMIZERS)}; "
        "also tf-<any tuneforge algorithm>, optuna-random",
    )
    ap.add_argument("--budget", type=int, help="trials per run for every problem (overrides)")
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--latency-levels", type=int, nargs="*", help="completed-trial counts")
    ap.add_argument("--latency-reps", type=int, default=LATENCY_REPS)
    ap.add_argument("--no-batch", action="store_true", help="skip the count=8 batch check")
    ap.add_argument(
        "--no-parallel",
        action="store_true",
        help="skip the parallel runs (auto and the Optuna samplers)",
    )
    ap.add_argument(
        "--parallel-workers",
        type=int,
        nargs="+",
        help="worker counts of auto's parallel runs, each >= 2 (default: 2 4 8; "
        f"the Optuna samplers run with {PARALLEL_WORKERS} when it is listed)",
    )
    args = ap.parse_args(argv)
    narrowed = (args.problems, args.optimizers, args.seeds, args.sklearn_seeds, args.budget)
    subset = args.quick or any(x is not None for x in (*narrowed, args.parallel_workers))
    args.parallel_workers = sorted(set(args.parallel_workers or DEFAULT_PARALLEL_WORKERS))
    if args.parallel_workers[0] < 2:
        ap.error(f"--parallel-workers: every count must be >= 2, got {args.parallel_workers[0]}")
    problems = all_problems()
    if args.problems is None:
        quick = [problems[n] for n in QUICK_PROBLEMS]
        args.problems = quick if args.quick else list(problems.values())
    else:
        unknown = [n for n in args.problems if n not in problems]
        if unknown:
            ap.error(f"unknown problems {unknown}; choose from {sorted(problems)}")
        args.problems = [problems[n] for n in args.problems]
    if args.quick:
        args.problems = [p for p in args.problems if p.kind != "sklearn"]
    explicit = args.optimizers is not None
    args.optimizers = list(args.optimizers or DEFAULT_OPTIMIZERS)
    missing = [why for o in args.optimizers if (why := missing_requirement(o))]
    if missing and (explicit or not subset):  # the published report never lacks a peer
        ap.error("; ".join(missing))
    args.not_run = missing
    args.optimizers = [o for o in args.optimizers if missing_requirement(o) is None]
    args.seeds = args.seeds or (2 if args.quick else DEFAULT_SEEDS)
    args.sklearn_seeds = args.sklearn_seeds or min(args.seeds, SKLEARN_SEEDS)
    args.budget = args.budget or (QUICK_BUDGET if args.quick else None)
    if args.latency_levels is None:
        args.latency_levels = list(QUICK_LATENCY_LEVELS if args.quick else LATENCY_LEVELS)
    if args.out is None and not subset:  # a partial run never overwrites the published report
        args.out = DEFAULT_OUT
    return args


def build_tasks(args: argparse.Namespace) -> list[Task]:
    tasks = []
    for p in args.problems:
        budget = args.budget or p.budget
        seeds = args.sklearn_seeds if p.kind == "sklearn" else args.seeds
        for o in args.optimizers:
            tasks += [Task("run", p.name, o, s, budget) for s in range(seeds)]
        if p.kind == "sklearn":
            continue
        if not args.no_parallel and "tf-auto" in args.optimizers:
            rival_counts = [w for w in args.parallel_workers if w == PARALLEL_WORKERS]
            for o in (o for o in args.optimizers if o in PARALLEL_OPTIMIZERS):
                counts = args.parallel_workers if o == "tf-auto" else rival_counts
                tasks += [
                    Task("run", p.name, o, s, budget, parallel_mode(w))
                    for w in counts
                    for s in range(args.seeds)
                ]
        if not args.no_batch:
            batch_seeds = range(1 if args.quick else args.seeds)
            tasks += [Task("batch", p.name, "tf-auto", s, 20) for s in batch_seeds]
    return tasks


def render(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    latency: list[dict[str, Any]],
    env: dict[str, str],
    command: str,
    wall: float,
) -> tuple[str, dict[str, Any]]:
    runs = [r for r in results if r["task"] == "run"]
    batches = [r for r in results if r["task"] == "batch"]
    problems: list[Problem] = args.problems
    opts = args.optimizers
    seq = report.Finals(runs, problems)
    budgets = sorted({(args.budget or p.budget, p.kind) for p in problems})
    out = [
        "# Optimizer benchmark",
        "",
        "Generated by `bench/optimizers.py` (method: bench/README.md). Do not edit by hand.",
        "",
        f"- command: `{command}`",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        *(f"- {k}: {v}" for k, v in env.items()),
        f"- seeds: 0..{args.seeds - 1} (synthetic and mixed), 0..{args.sklearn_seeds - 1} "
        "(scikit-learn tasks); budgets (trials per run): "
        + ", ".join(f"{b} ({k})" for b, k in budgets),
        "- random search = tuneforge `random` through the API (`tf-random`); "
        "`tf-*` through the HTTP API, `optuna-*` through ask/tell",
        f"- total wall time: {wall / 60:.1f} min",
        *(f"- not run: {why}" for why in getattr(args, "not_run", [])),
        "",
    ]
    out += [
        "## Final best value",
        "",
        "Mean ± std over seeds of the final best: regret (best - known optimum) where the "
        "optimum is known, 1 - 5-fold CV accuracy for sklearn tasks.",
        "",
        report.final_table(seq, opts),
        "",
    ]
    scores, means = report.score_table(seq, opts)
    out += [
        "## Normalized score",
        "",
        "Per problem: 0 = best value any optimizer found (any seed), 1 = median of random "
        "search's final values; mean over seeds. Lower is better.",
        "",
        scores,
        "",
    ]
    summary: dict[str, Any] = {"normalized": means}
    if report.AUTO in opts:
        wins, summary["wins"] = report.wins_table(seq)
        out += [
            "## tuneforge auto vs Optuna",
            "",
            "Per problem by mean final best; a tie when the difference is below 1% of "
            "(random median - best found).",
            "",
            wins,
            "",
        ]
    out += ["## Suggest overhead during the runs", "", report.overhead_table(runs, opts), ""]
    if latency:
        lat, summary["latency"] = report.latency_table(latency)
        out += [
            "## Suggest latency vs history size",
            "",
            "5 continuous parameters (Ackley-5 domain), random completed history. Median of "
            f"{args.latency_reps} suggestions (each completed before the next; first call "
            "after loading the history in parentheses). tf-auto: wall time of the HTTP "
            "suggest request; Optuna: `study.ask()` after `add_trial` of the same history. "
            "Default thread settings, nothing else running.",
            "",
            lat,
            "",
        ]
    if batches:
        dims = {b["dim"] for b in batches}
        ref = {d: random_min_pairwise(d) for d in dims}
        out += [
            "## Batch quality (auto, count=8 after 20 trials)",
            "",
            "Distances in tuneforge's unit-cube encoding (log scales, cell-centred ints, "
            "categories by index).",
            "",
            report.batch_table(batches, ref),
            "",
        ]
    synthetic = [p for p in problems if p.kind != "sklearn"]
    counts = sorted({mode_workers(r["mode"]) for r in runs if r["mode"] != "seq"})
    by_workers = {w: report.Finals(runs, synthetic, mode=parallel_mode(w)) for w in counts}
    if counts and report.AUTO in opts:
        wtab, summary["workers"] = report.workers_table(seq, by_workers)
        out += [
            "## auto with 1 to N workers (equal trials)",
            "",
            "The same worker simulation with each number of workers (1 = the sequential "
            "runs). Mean normalized score on the sequential runs' scale; the last column "
            "is the set mean over the sequential one.",
            "",
            wtab,
            "",
        ]
    par = by_workers.get(PARALLEL_WORKERS)
    if par is not None:
        ptab, summary["parallel"] = report.parallel_table(seq, par)
        out += [
            f"## {PARALLEL_WORKERS}-way parallel auto vs sequential auto (equal trials)",
            "",
            f"{PARALLEL_WORKERS} client_ids keep {PARALLEL_WORKERS} trials in flight; the "
            "next to finish is drawn by a seeded generator. Normalized scores use the "
            "sequential runs' scale.",
            "",
            ptab,
            "",
        ]
        peers, summary["parallel_peers"] = report.parallel_peers_table(seq, par, opts)
        out += [
            f"## {PARALLEL_WORKERS}-way parallel: every optimizer against its own sequential runs",
            "",
            f"The same {PARALLEL_WORKERS}-worker simulation for Optuna (ask without tell; "
            "`TPESampler(constant_liar=True)`, `GPSampler` with its own treatment of "
            "running trials). Normalized scores on the sequential runs' scale; "
            "the ratio row is each optimizer's set mean 8-way / sequential.",
            "",
            peers,
            "",
        ]
    return "\n".join(out), summary


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = "python -m bench.optimizers" + ("" if not argv else " " + shlex.join(argv))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    env_at_start = environment()
    tasks = build_tasks(args)
    for why in args.not_run:
        log(f"not run: {why}")
    log(f"{len(tasks)} tasks on {args.workers} processes")
    results = run_tasks(tasks, args.workers, log)
    latency: list[dict[str, Any]] = []
    if args.latency_levels:
        from .latency import measure

        warnings.filterwarnings("ignore")
        peers = tuple(o for o in ("optuna-gp", "optuna-tpe") if missing_requirement(o) is None)
        latency = measure(tuple(args.latency_levels), args.latency_reps, log, peers)
    wall = time.perf_counter() - t0
    env = dict(env_at_start)
    at_end = environment()["tuneforge"]
    if at_end != env["tuneforge"]:  # the code under test changed while the benchmark ran
        env["tuneforge"] += f" at the start, {at_end} at the end"
    text, _summary = render(args, results, latency, env, command, wall)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        kept = keep_section(args.out)  # bench/wide.py's section survives a rerun
        with open(args.out, "w") as fh:
            fh.write(text + "\n" + (f"\n{kept}\n" if kept else ""))
        log(f"wrote {args.out}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": results, "latency": latency}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
