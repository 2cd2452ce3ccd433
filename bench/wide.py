"""The wider benchmark (issue 21): 50 problems in six kinds, against every peer.

    python -m bench.wide                       # the full run -> a section of docs/benchmarks.md
    python -m bench.wide --quick               # 1 problem per kind, 2 seeds, 12 trials

Kinds: ``smooth`` (BBOB ill-conditioned / rotated unimodal, d = 2, 5, 10),
``multimodal`` (Rastrigin, separable and rotated), ``plateau`` (step ellipsoid,
quantized objectives), ``integer`` and ``categorical`` (mostly-integer and
mostly-categorical spaces) in bench/wide_synthetic.py, and ``sklearn-wide``
(nine cheap scikit-learn tuning tasks) in bench/wide_sklearn.py. Optimizers:
tuneforge ``auto`` and ``random`` through the HTTP API, Optuna's TPE
(independent and multivariate) and GPSampler, SMAC3's HPO facade and Ax
(BoTorch) through their ask/tell interfaces. Ax costs seconds per suggestion,
so it runs on the problems of ``--ax-problems`` only (the report says which).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

from . import wide_report
from .optimizers import environment
from .problems import Problem
from .runners import limit_threads, missing_requirement, run, run_each
from .wide_sklearn import wide_sklearn_problems
from .wide_synthetic import wide_synthetic_problems

OPTIMIZERS = ("tf-auto", "optuna-tpe", "optuna-tpe-ind", "optuna-gp", "smac", "ax", "tf-random")
#: Ax costs seconds per suggestion: it runs on these problems only by default.
AX_PROBLEMS = ("ellipsoid-rot-2", "step-ellipsoid-2")
#: GPSampler and SMAC cost 0.1-1 s per suggestion (more on a loaded machine): by default they
#: run on the 2-D BBOB problems and four more, one of each other kind.
HEAVY = ("optuna-gp", "smac")
HEAVY_EXTRA = ("int-layers-5", "cat-pipeline-7", "dtree-fractional-bc", "gb-fractional-wine")


def heavy_problems(problems: Sequence[Problem]) -> list[str]:
    return [
        p.name
        for p in problems
        if p.name in HEAVY_EXTRA
        or (p.kind in ("smooth", "multimodal", "plateau") and p.name.endswith("-2"))
    ]


DEFAULT_SEEDS = 5
DEFAULT_OUT = "docs/benchmarks.md"
LATENCY_LEVELS = (100, 1000)


def wide_problems() -> dict[str, Problem]:
    return {p.name: p for p in [*wide_synthetic_problems(), *wide_sklearn_problems()]}


def execute(task: tuple[str, str, int, int]) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    name, optimizer, seed, budget = task
    problem = wide_problems()[name]
    result = run(problem, optimizer, seed, budget)
    return {"task": "run", "kind": problem.kind, **result.to_dict()}


def init_worker() -> None:
    """One thread per process; and import tuneforge's app and every algorithm now, so a
    long run measures the code as it was when the run started."""
    warnings.filterwarnings("ignore")
    limit_threads()
    import tuneforge.api.app  # noqa: F401
    from tuneforge.core.algorithms import algorithm_names, get_algorithm

    for name in algorithm_names():
        get_algorithm(name)


def cost(task: tuple[str, str, int, int]) -> float:
    per = {"ax": 1.0, "optuna-gp": 0.15, "smac": 0.15, "tf-auto": 0.05}.get(task[1], 0.01)
    return task[3] * per


def run_tasks(
    tasks: list[tuple[str, str, int, int]], workers: int, log: Any, jsonl: str | None = None
) -> list[dict]:
    """Seed by seed (a run cut short still has every optimizer on its first seeds), the
    costliest first within a seed; each result is appended to ``jsonl`` as it comes."""
    ordered = sorted(tasks, key=lambda t: (t[2], -cost(t)))
    out: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def note(task: tuple[str, str, int, int], res: dict[str, Any]) -> None:
        out.append(res)
        if jsonl:
            with open(jsonl, "a") as fh:
                fh.write(json.dumps(res) + "\n")
        log(
            f"[{time.perf_counter() - t0:7.1f}s] {len(out)}/{len(ordered)} {task[0]} {task[1]} "
            f"seed={task[2]}: best {min(res['values']):.4g} ({res['seconds']:.1f}s)"
        )

    run_each(ordered, execute, note, workers, init_worker)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.wide", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 problem per kind, 2 seeds, 12 trials")
    ap.add_argument("--seeds", type=int, help=f"seeds 0..N-1 (default {DEFAULT_SEEDS})")
    ap.add_argument("--first-seed", type=int, default=0, help="first seed (development sets)")
    ap.add_argument("--problems", nargs="+", help="problem names (default: all)")
    ap.add_argument("--kinds", nargs="+", help="only these kinds")
    ap.add_argument("--optimizers", nargs="+", help=f"default: {' '.join(OPTIMIZERS)}")
    ap.add_argument("--ax-problems", nargs="*", help="problems Ax runs on (default: a subset)")
    ap.add_argument(
        "--heavy-problems",
        nargs="*",
        help="problems GPSampler and SMAC run on (default: the 2-D BBOB problems and "
        f"{', '.join(HEAVY_EXTRA)})",
    )
    ap.add_argument("--budget", type=int, help="trials per run for every problem (overrides)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--latency-levels", type=int, nargs="*", help="default 100 1000")
    ap.add_argument("--latency-reps", type=int, default=5)
    ap.add_argument("--out", help=f"write the report section into this file ({DEFAULT_OUT})")
    ap.add_argument("--json", help="also write every run's raw results here")
    ap.add_argument("--jsonl", help="append each run's result here as it finishes")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs already in --jsonl (same problem, optimizer, seed) and do the rest",
    )
    ap.add_argument("--latency-from", help="the latency rows of an earlier run's --json")
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: report the runs of --merge (on the seeds of --first-seed/--seeds)",
    )
    ap.add_argument(
        "--merge",
        nargs="+",
        default=[],
        help="--json files of earlier runs (other optimizers, same problems and seeds) to "
        "report together with this one; the report names their commands",
    )
    args = ap.parse_args(argv)
    problems = wide_problems()
    unknown = [n for n in args.problems or () if n not in problems]
    if unknown:
        ap.error(f"unknown problems {unknown}; choose from {sorted(problems)}")
    chosen = [problems[n] for n in args.problems] if args.problems else list(problems.values())
    if args.kinds:
        chosen = [p for p in chosen if p.kind in args.kinds]
    if args.quick:
        seen: set[str] = set()
        chosen = [p for p in chosen if not (p.kind in seen or seen.add(p.kind))]  # type: ignore[func-returns-value]
    args.problems = chosen
    full = not (args.quick or args.problems != list(problems.values()) or args.budget)
    args.optimizers = list(args.optimizers or OPTIMIZERS)
    missing = [why for o in args.optimizers if (why := missing_requirement(o))]
    if missing and full:
        ap.error("; ".join(missing))
    args.not_run = missing
    args.optimizers = [o for o in args.optimizers if missing_requirement(o) is None]
    args.seeds = args.seeds or (2 if args.quick else DEFAULT_SEEDS)
    args.budget = args.budget or (12 if args.quick else None)
    args.ax_problems = list(AX_PROBLEMS if args.ax_problems is None else args.ax_problems)
    if args.heavy_problems is None:
        args.heavy_problems = heavy_problems(args.problems)
    if args.latency_levels is None:
        args.latency_levels = [] if args.quick else list(LATENCY_LEVELS)
    if args.out is None and full and args.seeds >= DEFAULT_SEEDS and args.first_seed == 0:
        args.out = DEFAULT_OUT
    return args


def build_tasks(args: argparse.Namespace) -> list[tuple[str, str, int, int]]:
    tasks = []
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for p in args.problems:
        for o in args.optimizers:
            if o == "ax" and p.name not in args.ax_problems:
                continue
            if o in HEAVY and p.name not in args.heavy_problems:
                continue
            tasks += [(p.name, o, s, args.budget or p.budget) for s in seeds]
    return tasks


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = "python -m bench.wide" + ("" if not argv else " " + shlex.join(argv))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    env = environment()
    tasks = build_tasks(args)
    done: list[dict[str, Any]] = []
    if args.resume and args.jsonl and os.path.exists(args.jsonl):
        with open(args.jsonl) as fh:
            done = [r for line in fh if line.strip() and "header" not in (r := json.loads(line))]
        have = {(r["problem"], r["optimizer"], r["seed"]) for r in done}
        done = [
            r for r in done if (r["problem"], r["optimizer"], r["seed"]) in {t[:3] for t in tasks}
        ]
        tasks = [t for t in tasks if t[:3] not in have]
        log(f"resuming: {len(done)} runs kept from {args.jsonl}")
    elif args.jsonl:
        with open(args.jsonl, "w") as fh:
            start = {"command": command, "date": dt.datetime.now(dt.UTC).isoformat(" ", "minutes")}
            fh.write(json.dumps({"header": {**start, **env}}) + "\n")
    log(f"{len(tasks)} runs on {args.workers} processes")
    if args.render_only:
        tasks, args.optimizers = [], []
    results = done + run_tasks(tasks, args.workers, log, args.jsonl)
    merged_from = []
    for path in args.merge:
        with open(path) as fh:
            if path.endswith(".jsonl"):
                lines = [json.loads(line) for line in fh if line.strip()]
                head = next((x["header"] for x in lines if "header" in x), {})
                earlier = {"header": head, "results": [x for x in lines if "header" not in x]}
            else:
                earlier = json.load(fh)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        unknown = {r["optimizer"] for r in earlier["results"]} - set(OPTIMIZERS)
        if unknown:  # e.g. optuna-tpe-mv, which repeats optuna-tpe in Optuna 5
            args.not_run.append(f"runs of {', '.join(sorted(unknown))} in {path} (not compared)")
        results += [
            r for r in earlier["results"] if r["seed"] in seeds and r["optimizer"] in OPTIMIZERS
        ]
        merged_from.append(earlier.get("header", {}))
        for o in dict.fromkeys(r["optimizer"] for r in earlier["results"]):
            if o not in args.optimizers and o in OPTIMIZERS:
                args.optimizers.append(o)
    latency: list[dict[str, Any]] = []
    latency_run = ""
    if args.latency_from:
        with open(args.latency_from) as fh:
            earlier = json.load(fh)
        latency = earlier["latency"]
        h = earlier.get("header", {})
        latency_run = (
            f"`{h.get('command', '?')}` ({h.get('date', '?')}, tuneforge {h.get('tuneforge', '?')})"
        )
    elif args.latency_levels and ("tf-auto" in args.optimizers or args.render_only):
        from .latency import measure

        peers = tuple(o for o in ("optuna-gp",) if missing_requirement(o) is None)
        latency = measure(tuple(args.latency_levels), args.latency_reps, log, peers)
    header = {
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **env,
        "seeds": f"{args.first_seed}..{args.first_seed + args.seeds - 1}",
        "wall": f"{(time.perf_counter() - t0) / 60:.1f} min",
    }
    if latency_run:
        header["latency from"] = latency_run
    for i, h in enumerate(merged_from):
        header[f"merged run {i + 1}"] = (
            f"`{h.get('command', '?')}` ({h.get('date', '?')}, tuneforge {h.get('tuneforge', '?')}, "
            f"{h.get('wall', '?')})"
        )
    text = wide_report.render(args, results, latency, header)
    print(text)
    if args.out:
        wide_report.write_section(args.out, text)
        log(f"wrote the wide section of {args.out}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"header": header, "results": results, "latency": latency}, fh)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
