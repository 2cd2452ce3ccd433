"""Benchmark: tuneforge's multi-objective algorithms (through the real HTTP API) against
Optuna's NSGAIISampler, TPESampler and GPSampler, by hypervolume at equal budget.

    python -m bench.population_mo --seeds 5 --out docs/multi-objective-results.md
    python -m bench.population_mo --quick      # 2 problems, 2 seeds, 20 trials

Each run is sequential: suggest (ask) one trial, evaluate, complete (tell). The
hypervolume after every trial is computed the same way for every optimizer
(``moocore``, the problem's fixed reference point); for tuneforge runs the
study declares that reference as ``hypervolume_reference`` and the final value
of ``GET /studies/{id}/hypervolume`` must equal the benchmark's own.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

from .mo_problems import MOProblem, mo_problems
from .runners import limit_threads, quiet_optuna, tuneforge_api

TUNEFORGE = ("tf-auto", "tf-ehvi", "tf-nsga2", "tf-gp", "tf-tpe", "tf-genetic", "tf-random")
OPTUNA = ("optuna-nsga2", "optuna-tpe", "optuna-gp")
DEFAULT_OPTIMIZERS = (*TUNEFORGE, *OPTUNA)


def hypervolume_history(
    points: Sequence[Sequence[float]], reference: Sequence[float]
) -> list[float]:
    """Hypervolume of the first ``i + 1`` points, for every ``i``."""
    import moocore

    ref = np.asarray(reference, dtype=float)
    out, front = [], np.empty((0, len(ref)))
    for p in np.asarray(points, dtype=float):
        if np.all(p < ref) and not (len(front) and np.any(np.all(front <= p, axis=1))):
            front = np.vstack([front[~np.all(p <= front, axis=1)], p])
        out.append(float(moocore.hypervolume(front, ref=ref)) if len(front) else 0.0)
    return out


def run_tuneforge(problem: MOProblem, algorithm: str, seed: int, budget: int) -> dict[str, Any]:
    points: list[tuple[float, ...]] = []
    with tuneforge_api() as api:
        body = {
            "name": f"{problem.name}-{algorithm}-{seed}",
            "parameters": list(problem.parameters),
            "metrics": [{"name": n, "goal": "minimize"} for n in problem.objectives],
            "algorithm": algorithm,
            "max_trials": budget,
            "seed": seed,
            "hypervolume_reference": dict(zip(problem.objectives, problem.reference, strict=True)),
        }
        study = int(api._post("/studies", body)["id"])
        while len(points) < budget:
            trials, _dt = api.suggest(study, "bench")
            number, params = trials[0]
            values = problem.evaluate(params)
            api._post(
                f"/studies/{study}/trials/{number}/complete",
                {"values": dict(zip(problem.objectives, values, strict=True))},
            )
            points.append(values)
        served = api.client.get(f"/api/v1/studies/{study}/hypervolume").json()
    history = hypervolume_history(points, problem.reference)
    if not np.isclose(served["hypervolume"], history[-1], rtol=1e-9, atol=1e-12):
        raise RuntimeError(f"endpoint says {served['hypervolume']}, benchmark {history[-1]}")
    return {"points": points, "hypervolume": history}


def optuna_sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "optuna-nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "optuna-gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(f"unknown optimizer {name!r}")


def run_optuna(problem: MOProblem, name: str, seed: int, budget: int) -> dict[str, Any]:
    import optuna

    quiet_optuna()
    study = optuna.create_study(
        directions=["minimize"] * len(problem.objectives), sampler=optuna_sampler(name, seed)
    )
    distributions = problem.optuna_distributions()
    points = []
    for _ in range(budget):
        trial = study.ask(distributions)
        values = problem.evaluate(trial.params)
        study.tell(trial, list(values))
        points.append(values)
    return {"points": points, "hypervolume": hypervolume_history(points, problem.reference)}


def execute(task: tuple[str, str, int, int]) -> dict[str, Any]:
    problem_name, optimizer, seed, budget = task
    warnings.filterwarnings("ignore")
    problem = mo_problems()[problem_name]
    t0 = time.perf_counter()
    if optimizer.startswith("tf-"):
        out = run_tuneforge(problem, optimizer[3:], seed, budget)
    else:
        out = run_optuna(problem, optimizer, seed, budget)
    return {
        "problem": problem_name,
        "optimizer": optimizer,
        "seed": seed,
        "budget": budget,
        "seconds": time.perf_counter() - t0,
        **out,
    }


def init_worker() -> None:
    warnings.filterwarnings("ignore")
    limit_threads()


def run_all(
    tasks: list[tuple[str, str, int, int]], workers: int, log: str | None = None
) -> list[dict[str, Any]]:
    """Run every task on ``workers`` processes; each result is also appended to ``log``
    (JSON lines) as it arrives, so an interrupted run can still be reported (``--report``)."""
    out: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    cost = {"optuna-gp": 4.0, "tf-gp": 2.0, "tf-auto": 2.0, "tf-ehvi": 4.0}
    ordered = sorted(tasks, key=lambda t: -(cost.get(t[1], 1.0) * (10 if "rf" in t[0] else 1)))
    with ProcessPoolExecutor(max_workers=workers, initializer=init_worker) as pool:
        futures = {pool.submit(execute, t): t for t in ordered}
        for fut in as_completed(futures):
            res = fut.result()
            out.append(res)
            if log:
                with open(log, "a") as fh:
                    fh.write(json.dumps(res) + "\n")
            print(
                f"[{time.perf_counter() - t0:7.1f}s] {len(out)}/{len(tasks)} {res['problem']} "
                f"{res['optimizer']} seed={res['seed']}: hv {res['hypervolume'][-1]:.4g} "
                f"({res['seconds']:.1f}s)",
                flush=True,
            )
    return out


# ---- report ----------------------------------------------------------------------------------
def summarize(results: list[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """problem -> optimizer -> final hypervolume of each seed (seed order; a run repeated in
    the logs counts once: runs are deterministic)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for r in results:
        out.setdefault(r["problem"], {}).setdefault(r["optimizer"], {})[r["seed"]] = r[
            "hypervolume"
        ][-1]
    return {
        p: {o: np.array([runs[k] for k in sorted(runs)]) for o, runs in by.items()}
        for p, by in out.items()
    }


def verdicts(table: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """Per problem: Optuna's best sampler and mean, and each tuneforge algorithm's mean."""
    out = {}
    for problem, by in table.items():
        peers = {o: float(v.mean()) for o, v in by.items() if o.startswith("optuna-")}
        ours = {o: float(v.mean()) for o, v in by.items() if o.startswith("tf-")}
        best_peer = max(peers, key=peers.__getitem__) if peers else None
        out[problem] = {"best_peer": best_peer, "peers": peers, "ours": ours}
    return out


def render(results: list[dict[str, Any]], command: str, seconds: float) -> str:
    problems = mo_problems()
    table = summarize(results)
    optimizers = [o for o in DEFAULT_OPTIMIZERS if any(o in by for by in table.values())]
    seeds = max(len(v) for by in table.values() for v in by.values())
    lines = [
        "<!-- written by bench/population_mo.py -->",
        f"Command: `{command}` ({seconds / 60:.0f} min; the runs took "
        f"{sum(r['seconds'] for r in results) / 60:.0f} min in all on {platform.machine()}, "
        f"Python {platform.python_version()}, {_versions()}).",
        "",
        f"Final hypervolume, mean ± std over {seeds} seeds unless a cell says otherwise (higher is better; **bold**: the best mean "
        "of the row). Reference points: zdt1/zdt2 (1.1, 11), dtlz2 (2.2, 2.2, 2.2), "
        "rf-size-accuracy (error 0.2, log10 nodes 4.5). `max` is the true front's "
        "hypervolume where it is known.",
        "",
        "| problem | budget | max | " + " | ".join(optimizers) + " |",
        "|---|---|---|" + "---|" * len(optimizers),
    ]
    for name, by in table.items():
        means = {o: by[o].mean() for o in optimizers if o in by}
        top = max(means.values())
        cells = []
        for o in optimizers:
            if o not in by:
                cells.append("—")
                continue
            text = f"{by[o].mean():.4g} ± {by[o].std():.2g}"
            if len(by[o]) != seeds:
                text += f" ({len(by[o])} seeds)"
            cells.append(f"**{text}**" if means[o] == top else text)
        best = problems[name].best_hypervolume
        budget = next(r["budget"] for r in results if r["problem"] == name)
        lines.append(
            f"| {name} | {budget} | {best:.4g} | " if best else f"| {name} | {budget} | — | "
        )
        lines[-1] += " | ".join(cells) + " |"
    lines += [
        "",
        "Each tuneforge algorithm against Optuna's best sampler on the problem (mean):",
        "",
    ]
    lines += [
        "| problem | Optuna's best | "
        + " | ".join(o for o in optimizers if o.startswith("tf-"))
        + " |"
    ]
    ours = [o for o in optimizers if o.startswith("tf-")]
    lines.append("|---|---|" + "---|" * len(ours))
    wins = dict.fromkeys(ours, 0)
    for name, v in verdicts(table).items():
        peer = v["best_peer"]
        cells = []
        for o in ours:
            mine = v["ours"].get(o)
            if mine is None or peer is None:
                cells.append("—")
                continue
            ok = mine >= v["peers"][peer]
            wins[o] += ok
            cells.append(f"{'≥' if ok else '<'} ({mine / v['peers'][peer]:.3f} of it)")
        peer_text = f"{peer} {v['peers'][peer]:.4g}" if peer else "—"
        lines.append(f"| {name} | {peer_text} | " + " | ".join(cells) + " |")
    lines.append(
        "| **at least Optuna's best** | | "
        + " | ".join(f"**{wins[o]} of {len(table)}**" for o in ours)
        + " |"
    )
    return "\n".join(lines) + "\n"


def _versions() -> str:
    import optuna

    return f"Optuna {optuna.__version__}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    ap.add_argument("--first-seed", type=int, default=0, help="start at this seed (default 0)")
    ap.add_argument("--problems", nargs="+", choices=sorted(mo_problems()))
    ap.add_argument("--optimizers", nargs="+", default=list(DEFAULT_OPTIMIZERS))
    ap.add_argument("--budget", type=int, help="trials per run (default: each problem's)")
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--quick", action="store_true", help="zdt1 and dtlz2, 2 seeds, 20 trials")
    ap.add_argument("--out", help="write the markdown report here (default: print it)")
    ap.add_argument("--json", help="also write every run's points and hypervolumes here")
    ap.add_argument("--log", help="append each run's result here as it finishes (JSON lines)")
    ap.add_argument("--report", help="only render the runs of this JSON-lines log")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problems = mo_problems()
    names = args.problems or (["zdt1", "dtlz2"] if args.quick else list(problems))
    seeds = 2 if args.quick else args.seeds
    tasks = [
        (name, o, seed, (20 if args.quick else args.budget or problems[name].budget))
        for name in names
        for o in args.optimizers
        for seed in range(args.first_seed, seeds)
    ]
    t0 = time.perf_counter()
    if args.report:
        with open(args.report) as fh:
            results = [json.loads(line) for line in fh if line.strip()]
    else:
        results = run_all(tasks, args.workers, args.log)
    command = "python -m bench.population_mo " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = render(results, command.strip(), time.perf_counter() - t0)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
