"""Benchmark: early stopping and multi-fidelity at equal training resource.

    python -m bench.early_stopping            # full: 4 tasks x 7 methods x 5 seeds, 1 and 4 workers
    python -m bench.early_stopping --quick    # the simulated task, 1 seed, a tiny budget: seconds

Full-budget random search, tuneforge's ``median``, ``asha``, ``hyperband`` and
``bohb`` rules (TPE, through the real service) and Optuna's TPE with its
``SuccessiveHalvingPruner`` and ``HyperbandPruner`` each get the training
resource random search spends on ``--configs`` configurations. Method and
results: docs/early-stopping.md ("Benchmark"), which the full run updates
together with docs/img/early-stopping.png.
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
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from . import es_report as report
from .es_runs import METHODS, RunLog, run
from .es_tasks import FIDELITY, MAX_STEPS, REDUCTION_FACTOR, all_tasks

DOC = "docs/early-stopping.md"
PLOT = "docs/img/early-stopping.png"
BEGIN = "<!-- bench:early-stopping:begin -->"
END = "<!-- bench:early-stopping:end -->"
DEFAULT_CONFIGS = 8
DEFAULT_SEEDS = 5
PARALLEL = 4
PARALLEL_METHODS = ("tf-asha", "tf-hyperband")
PARALLEL_SEEDS = 2
#: Simulated training time per step of the simulated task in the runs with several workers.
SIM_STEP_SECONDS = 0.2
REAL_TASKS = ("sgd", "mlp", "hgb")

Job = tuple[str, str, int, int, int, float]  # task, method, seed, configs, workers, sim step


def execute(job: Job) -> dict[str, Any]:
    task, method, seed, configs, workers, sim_step = job
    warnings.filterwarnings("ignore")
    try:
        result = run(all_tasks(sim_step)[task], method, seed, configs, workers).to_dict()
    except Exception as exc:  # one broken run is reported, not the end of the benchmark
        log = RunLog(task, method, seed, workers, configs * MAX_STEPS)
        log.errors.append(f"{type(exc).__name__}: {exc}")
        result = log.to_dict()
    result["sim_step_seconds"] = sim_step if task == "sim" else None
    return result


def init_worker() -> None:
    from .runners import limit_threads

    warnings.filterwarnings("ignore")
    limit_threads()


def cost(job: Job) -> float:
    """A rough relative cost, to start the longest jobs first."""
    per_step = {"hgb": 3.0, "mlp": 2.0, "sgd": 1.0, "sim": 0.5}[job[0]]
    return job[3] * per_step + (1.0 if job[1].startswith("tf-") else 0.0)


def run_jobs(
    jobs: Sequence[Job], processes: int, log: Any, save: Any = None
) -> list[dict[str, Any]]:
    ordered = sorted(jobs, key=lambda j: -cost(j))
    out: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def note(job: Job, res: dict[str, Any]) -> None:
        out.append(res)
        if save is not None:
            save(out)
        best = max((s for _, s in res["curve"]), default=float("nan"))
        problems = f" ERRORS {res['errors']}" if res["errors"] else ""
        log(
            f"[{time.perf_counter() - t0:7.1f}s] {len(out):>4}/{len(ordered)} {job[0]} {job[1]} "
            f"seed={job[2]} workers={job[4]}: best {best:.4f}, {res['configs']} configs, "
            f"{res['resumes']} resumes, {res['wall_seconds']:.1f}s{problems}"
        )

    if processes <= 1:
        init_worker()
        for job in ordered:
            note(job, execute(job))
        return out
    with ProcessPoolExecutor(max_workers=processes, initializer=init_worker) as pool:
        futures = {pool.submit(execute, j): j for j in ordered}
        for fut in as_completed(futures):
            note(futures[fut], fut.result())
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.early_stopping", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--quick", action="store_true", help="sim task, 1 seed, 3 configs")
    ap.add_argument("--tasks", nargs="+", choices=sorted(all_tasks()), help="default: all")
    ap.add_argument("--methods", nargs="+", choices=METHODS, help="default: all")
    ap.add_argument("--seeds", type=int, help=f"seeds per run (default {DEFAULT_SEEDS})")
    ap.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    ap.add_argument(
        "--configs",
        type=int,
        help=f"random search's configurations: the budget is configs x {MAX_STEPS} steps "
        f"(default {DEFAULT_CONFIGS})",
    )
    ap.add_argument(
        "--parallel",
        type=int,
        default=PARALLEL,
        help=f"workers of the parallel runs (default {PARALLEL}; 0: none)",
    )
    ap.add_argument(
        "--parallel-methods",
        nargs="+",
        choices=METHODS,
        default=list(PARALLEL_METHODS),
        help="methods run with --parallel workers too",
    )
    ap.add_argument(
        "--parallel-seeds",
        type=int,
        default=PARALLEL_SEEDS,
        help=f"seeds of the parallel runs (the first N; default {PARALLEL_SEEDS})",
    )
    ap.add_argument(
        "--sim-step-seconds",
        type=float,
        default=SIM_STEP_SECONDS,
        help="simulated training time of a sim step in the parallel runs",
    )
    ap.add_argument("--processes", type=int, default=2, help="runs at once (default 2)")
    ap.add_argument("--out", help=f"write the report here (default: {DOC} for the full run)")
    ap.add_argument("--plot", help=f"write the plot here (default: {PLOT} for the full run)")
    ap.add_argument("--json", help="also write every run's raw results here (after each run)")
    ap.add_argument(
        "--from-json",
        help="render the report (and plot) from an earlier run's --json file instead of "
        "running; its command, date and load are the earlier run's",
    )
    args = ap.parse_args(argv)
    narrowed = (
        any(x is not None for x in (args.tasks, args.methods, args.seeds, args.configs))
        or args.seed_start != 0
        or args.parallel != PARALLEL
    )
    args.tasks = args.tasks or (["sim"] if args.quick else list(all_tasks()))
    args.methods = args.methods or [m for m in METHODS if m != "tf-auto"]
    args.methods = [m for m in METHODS if m in args.methods and m != "tf-auto"] + (
        ["tf-auto"] if "tf-auto" in args.methods else []
    )
    args.seeds = args.seeds or (1 if args.quick else DEFAULT_SEEDS)
    args.configs = args.configs or (3 if args.quick else DEFAULT_CONFIGS)
    if args.quick:
        args.sim_step_seconds = min(args.sim_step_seconds, 0.005)
    full = not (args.quick or narrowed)
    if full:
        args.out = args.out or DOC
        args.plot = args.plot or PLOT
    return args


def build_jobs(args: argparse.Namespace) -> list[Job]:
    seeds = range(args.seed_start, args.seed_start + args.seeds)
    jobs: list[Job] = [
        (t, m, s, args.configs, 1, 0.0) for t in args.tasks for m in args.methods for s in seeds
    ]
    if args.parallel > 1:
        jobs += [
            (t, m, s, args.configs, args.parallel, args.sim_step_seconds)
            for t in args.tasks
            for m in args.parallel_methods
            for s in list(seeds)[: args.parallel_seeds]
        ]
    return jobs


def load() -> str:
    """The 1, 5 and 15 minute load averages (as ``uptime`` shows them)."""
    try:
        with open("/proc/loadavg") as fh:
            return " / ".join(fh.read().split()[:3])
    except OSError:
        return "?"


def environment() -> dict[str, str]:
    import numpy
    import optuna
    import sklearn

    def git(*a: str) -> str:
        try:
            return subprocess.run(
                ["git", *a], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    dirty = git("status", "--porcelain", "--", "core", "api")
    return {
        "machine": f"{os.cpu_count()} cores ({platform.machine()}), shared with other jobs",
        "python": platform.python_version(),
        "optuna": optuna.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "tuneforge": git("rev-parse", "--short", "HEAD")
        + (" + uncommitted changes" if dirty else ""),
    }


def render(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    env: dict[str, str],
    meta: dict[str, Any],
) -> str:
    res = report.Results(results)
    tasks, methods = args.tasks, args.methods
    real = [t for t in REAL_TASKS if t in tasks]
    out = [
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; wall time {meta['wall'] / 60:.1f} min; "
        f"load average (1, 5, 15 min) at the start {meta['load_start']}, at the end {meta['load_end']}",
        *(f"- {k}: {v}" for k, v in env.items()),
        f"- budget: {args.configs} configurations x {MAX_STEPS} steps = {args.configs * MAX_STEPS} "
        f"steps per run; fidelity {FIDELITY['min']}..{FIDELITY['max']}, reduction factor "
        f"{REDUCTION_FACTOR}; seeds {args.seed_start}..{args.seed_start + args.seeds - 1}",
        "",
        "### Best fully trained configuration at equal resource (1 worker)",
        "",
        "Validation accuracy of the best configuration trained to the full fidelity, "
        "mean ± std over seeds.",
        "",
        report.final_table(res, tasks, methods),
        "",
        "### Resource to reach random search's final score",
        "",
        f"Target: random search's final score (mean over seeds) less {report.WITHIN:.1%}. "
        "Each cell: the share of the budget at which the mean-over-seeds curve reaches it "
        "(in parentheses: seeds that reach it on their own, and their median share).",
        "",
        report.reach_table(res, tasks, methods),
        "",
        "The same with any trained model counting, not only fully trained ones (a "
        "configuration paused at step 9 has a model with a validation score too; random "
        "search's target is then its best over every step as well):",
        "",
        report.reach_table(report.Results(results, "any_curve"), tasks, methods),
        "",
        "### Best score along the way (mean over seeds)",
        "",
        report.anytime_table(res, tasks, methods),
        "",
    ]
    if args.parallel > 1:
        out += [
            f"### {args.parallel} workers",
            "",
            f"{args.parallel} worker threads against one server. Busy = time inside training and "
            "validation / (workers x wall time); the rest is suggest, reports, checkpoints and "
            f"waiting. In these runs a step of the simulated task sleeps {args.sim_step_seconds * 1000:.0f} ms "
            "(a stand-in training time that uses no CPU). Per step: a worker's time inside "
            "training, its time outside it, and the CPU time of the whole process (server, "
            "clients and training; for the simulated task, whose steps sleep, that is the "
            "service's own cost). Real tasks run 4 training threads on at most 2 cores here, "
            "so their steps take longer than with 1 worker.",
            "",
            report.workers_table(res, tasks, [*args.parallel_methods], args.parallel),
            "",
        ]
    if real:
        out += ["### Targets", ""]
        for name, met, numbers in report.targets(res, real, methods, args.parallel):
            out.append(f"- {'met' if met else 'NOT met'}: {name} ({numbers})")
        out.append("")
    errors = [
        f"{r['task']} {r['method']} seed {r['seed']}: {e}" for r in results for e in r["errors"]
    ]
    if errors:
        out += ["### Errors", "", *(f"- {e}" for e in errors), ""]
    return "\n".join(out)


def write_section(path: str, text: str) -> None:
    """Replace the generated block between the markers of ``path`` (appended if absent)."""
    with open(path) as fh:
        doc = fh.read()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + block + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as fh:
        fh.write(doc)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.from_json:
        results, meta, env = from_json(args)
    else:
        meta = {
            "command": "python -m bench.early_stopping" + (" " + shlex.join(argv) if argv else ""),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_start": load(),
        }
        env = environment()
        jobs = build_jobs(args)
        log(f"{len(jobs)} runs on {args.processes} processes, load {meta['load_start']}")
        t0 = time.perf_counter()

        def save(done: list[dict[str, Any]]) -> None:  # after every run: nothing is lost
            meta["wall"] = time.perf_counter() - t0
            meta["load_end"] = load()
            if args.json:
                dump(args.json, args, meta, env, done)

        results = run_jobs(jobs, args.processes, log, save)
        save(results)
    text = render(args, results, env, meta)
    print(text)
    if args.plot:
        why = report.plot(report.Results(results), args.tasks, args.methods, args.plot)
        log(f"plot not written: {why}" if why else f"wrote {args.plot}")
    if args.out:
        if args.out.endswith(DOC.split("/")[-1]) and os.path.exists(args.out):
            write_section(args.out, text)
        else:
            with open(args.out, "w") as fh:
                fh.write(text + "\n")
        log(f"wrote {args.out}")
    return 1 if any(r["errors"] for r in results) else 0


def dump(
    path: str,
    args: argparse.Namespace,
    meta: dict[str, Any],
    env: dict[str, str],
    results: list[dict[str, Any]],
) -> None:
    with open(path, "w") as fh:
        json.dump({"args": vars(args), "meta": meta, "env": env, "results": results}, fh)


def from_json(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any], Any]:
    """The results, metadata and environment of an earlier run's ``--json`` file; the
    settings that shape the report are taken from it too."""
    with open(args.from_json) as fh:
        saved = json.load(fh)
    keep = ("tasks", "methods", "seeds", "seed_start", "configs", "parallel")
    for key in (*keep, "parallel_methods", "sim_step_seconds"):
        setattr(args, key, saved["args"][key])
    return saved["results"], saved["meta"], saved["env"]


if __name__ == "__main__":
    sys.exit(main())
