"""Development loop for ``auto``'s GP on the wider benchmark's problems, in-process.

A tuneforge algorithm is driven in this process (the loop of tests/unit/test_gp.py: the
state goes through JSON as the service stores it), which gives the same trajectory as
through the API and costs no server. ``--gp-options`` overrides ``gp``'s option defaults
for the runs (also when ``auto`` delegates to it), so a variant can be compared with the
current defaults on the same seeds. Use development seeds (100-103), never the
benchmark's (0-4), except for the one confirmation run.

```bash
nice -n 10 python -m bench.gp_dev --variant base --jsonl /tmp/dev.jsonl
nice -n 10 python -m bench.gp_dev --variant warp --gp-options '{"input_warping": true}' \
    --jsonl /tmp/dev.jsonl
python -m bench.gp_dev --compare base warp --jsonl /tmp/dev.jsonl
```
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

from .problems import Problem, all_problems
from .runners import limit_threads
from .wide import wide_problems

#: The problems the issue-21 precision work targets: smooth and plateau BBOB at d = 2, 5.
DEV_PROBLEMS = tuple(
    f"{name}-{d}"
    for d in (2, 5)
    for name in (
        "ellipsoid",
        "ellipsoid-rot",
        "discus",
        "bent-cigar",
        "sharp-ridge",
        "different-powers",
        "step-ellipsoid",
        "quantized-ellipsoid",
        "staircase",
    )
)
DEV_SEEDS = (100, 101, 102, 103)


def run_inprocess(
    problem: Problem, algorithm: str, seed: int, gp_options: Mapping[str, Any]
) -> dict[str, Any]:
    """``problem.budget`` sequential trials of a tuneforge algorithm in this process."""
    from tuneforge.core.algorithms import create_algorithm, get_algorithm, validate_algorithm
    from tuneforge.core.algorithms.base import SuggestRequest
    from tuneforge.core.space import SearchSpace
    from tuneforge.core.trials import Metric, Trial, TrialState

    gp = get_algorithm("gp")
    original = gp.validate_options  # bound to GPSearch: the inherited classmethod

    def validate(cls: Any, options: Mapping[str, Any], space: Any) -> dict[str, Any]:
        return {**original(options, space), **gp_options}

    gp.validate_options = classmethod(validate)  # type: ignore[method-assign,assignment]
    try:
        space = SearchSpace.from_list(list(problem.parameters))
        algo = create_algorithm(algorithm, validate_algorithm(algorithm, {}, space), space)
        metrics = (Metric("objective", goal="minimize"),)  # type: ignore[arg-type]
        history: list[Trial] = []
        state: Any = None
        values: list[float] = []
        times: list[float] = []
        while len(history) < problem.budget:
            request = SuggestRequest(space, metrics, tuple(history), (), 1, seed, state)
            t0 = time.perf_counter()
            s = algo.suggest(request)
            times.append(time.perf_counter() - t0)
            state = json.loads(json.dumps(s.state, allow_nan=False))
            for p in s.params:
                v = problem.evaluate(p)
                values.append(v)
                history.append(
                    Trial(
                        number=len(history),
                        state=TrialState.COMPLETED,
                        params=dict(p),
                        values={"objective": v},
                    )
                )
    finally:
        del gp.validate_options  # back to the inherited one
    return {"values": values, "suggest_seconds": times}


def patch_constants(assignments: Sequence[str]) -> None:
    """``module.NAME=json`` under tuneforge.core.algorithms: set a module constant."""
    import importlib

    for item in assignments:
        target, value = item.split("=", 1)
        module, const = target.rsplit(".", 1)
        mod = importlib.import_module(f"tuneforge.core.algorithms.{module}")
        assert hasattr(mod, const), target
        setattr(mod, const, json.loads(value))


def execute(task: tuple[str, str, str, int, str, tuple[str, ...]]) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    variant, optimizer, name, seed, options, constants = task
    patch_constants(constants)
    problem = {**all_problems(), **wide_problems()}[name]
    t0 = time.perf_counter()
    if optimizer.startswith("tf-"):
        out = run_inprocess(problem, optimizer[3:], seed, json.loads(options))
    else:
        from .runners import run_optuna

        res = run_optuna(problem, optimizer, seed, problem.budget)
        out = {"values": res.values, "suggest_seconds": res.suggest_seconds}
    best = min(out["values"])
    regret = best - (problem.optimum or 0.0)
    return {
        "variant": variant,
        "optimizer": optimizer,
        "gp_options": json.loads(options),
        "constants": list(constants),
        "problem": name,
        "seed": seed,
        "best": best,
        "regret": regret,
        "seconds": time.perf_counter() - t0,
        "median_suggest": float(np.median(out["suggest_seconds"])),
    }


def log_regret(r: float) -> float:
    return math.log10(max(r, 1e-12))


def compare(jsonl: str, base: str, others: Sequence[str], seeds: Sequence[int]) -> None:
    """Per problem mean log10(regret) of each variant, and its mean difference from ``base``."""
    with open(jsonl) as fh:
        rows = [json.loads(line) for line in fh]
    rows = [r for r in rows if r["seed"] in set(seeds)]
    by: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for r in rows:
        by[(r["variant"], r["problem"])][r["seed"]] = r["regret"]
    names = [base, *others]
    problems = sorted({p for (v, p) in by if v == base})
    print("| problem | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    diffs: dict[str, list[float]] = defaultdict(list)
    seeds_used = sorted({s for (v, p) in by if v == base for s in by[(v, p)]})
    print(f"seeds {seeds_used}; mean over seeds of log10(max(regret, 1e-12))")
    better: dict[str, int] = defaultdict(int)
    for p in problems:
        seeds = sorted(by[(base, p)])
        cells = []
        b = np.mean([log_regret(by[(base, p)][s]) for s in seeds])
        for v in names:
            got = by.get((v, p), {})
            if not all(s in got for s in seeds):
                cells.append("-")
                continue
            m = float(np.mean([log_regret(got[s]) for s in seeds]))
            cells.append(f"{m:.2f}")
            if v != base:
                diffs[v].append(m - b)
                better[v] += int(m < b - 0.05)
        print(f"| {p} | " + " | ".join(cells) + " |")
    for v in others:
        if diffs[v]:
            print(
                f"{v}: mean log10-regret change vs {base} {np.mean(diffs[v]):+.3f} over "
                f"{len(diffs[v])} problems (median {np.median(diffs[v]):+.3f}), "
                f"better (by > 0.05) on {better[v]}, "
                f"worse on {sum(d > 0.05 for d in diffs[v])}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--variant", default="base", help="label of this run in the jsonl")
    ap.add_argument("--optimizer", default="tf-auto", help="tf-<algorithm> or optuna-*")
    ap.add_argument("--gp-options", default="{}", help="JSON: gp option overrides")
    ap.add_argument(
        "--set", nargs="*", default=[], help="module.CONST=json, e.g. gp_trust.INIT=0.5"
    )
    ap.add_argument("--problems", nargs="*", default=list(DEV_PROBLEMS))
    ap.add_argument("--seeds", nargs="*", type=int, default=list(DEV_SEEDS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--jsonl", default="/tmp/gp_dev.jsonl")
    ap.add_argument("--compare", nargs="+", metavar="VARIANT", help="base variant, then others")
    args = ap.parse_args(argv)
    if args.compare:
        compare(args.jsonl, args.compare[0], args.compare[1:], args.seeds)
        return 0
    tasks = [
        (args.variant, args.optimizer, p, s, args.gp_options, tuple(args.set))
        for s in args.seeds
        for p in args.problems
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers, initializer=limit_threads) as pool:
        futures = [pool.submit(execute, t) for t in tasks]
        for fut in as_completed(futures):
            res = fut.result()
            with open(args.jsonl, "a") as fh:
                fh.write(json.dumps(res) + "\n")
            print(
                f"[{time.perf_counter() - t0:6.0f}s] {res['variant']} {res['problem']} "
                f"seed={res['seed']}: regret {res['regret']:.3g} ({res['seconds']:.1f}s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
