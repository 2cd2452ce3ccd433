"""Benchmark: population-based training against random search and ASHA at equal compute.

    nice -n 10 python -m bench.population_pbt                 # 5 seeds -> docs/pbt.md
    python -m bench.population_pbt --quick                    # 1 seed, short training

The task (:mod:`bench.pbt_task`): linear regression trained by SGD epochs on
ill-conditioned data, where the best learning rate falls during training. Every method gets the same compute:
``population * epochs`` training epochs.

- ``random``: random search, ``population`` configurations each trained for
  ``epochs`` epochs.
- ``asha``: random configurations under tuneforge's ``asha`` rule (fidelity
  ``epochs``, reduction factor 3), paused trials resumed from their checkpoint,
  until the epochs are spent.
- ``pbt``: tuneforge's ``pbt`` rule, ``population`` members trained side by side
  one epoch at a time; each saves its model, reports, and when the reply says
  exploit, loads the donor's model and takes the explored params (the SDK
  applies the action; the loop only reloads and sets the params).

All three go through the real service (the app under uvicorn on a fresh SQLite
file, :func:`bench.es_runs.local_server`) with the SDK, one worker, so a run is
deterministic. The score of a run is the **test** mean squared error of the
fully trained model (``epochs`` epochs) with the best validation error:
selection on the validation rows, the number reported on rows no method saw
(lower is better; the noise alone gives 1.0).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import pbt_task as task
from .es_runs import local_server

DOC = "docs/pbt.md"
BEGIN = "<!-- bench:pbt:begin -->"
END = "<!-- bench:pbt:end -->"
METHODS = ("random", "asha", "pbt")


@dataclass(frozen=True)
class Setup:
    population: int = 8
    epochs: int = 20
    interval: int = 2
    quantile: float = 0.25
    perturb: float = 0.2

    @property
    def budget(self) -> int:
        """Training epochs every method gets."""
        return self.population * self.epochs


@dataclass
class Run:
    method: str
    seed: int
    epochs_spent: int = 0
    trials: int = 0
    exploits: int = 0
    #: ``(validation, test)`` error of every model trained to the last epoch.
    finals: list[tuple[float, float]] = field(default_factory=list)
    seconds: float = 0.0
    #: pbt: ``(step, eta0)`` along the lineage of the best final model (whose weights it
    #: trained with which step size, through the donors it copied).
    schedule: list[tuple[int, float]] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Test error of the fully trained model with the best validation error."""
        return min(self.finals)[1] if self.finals else float("nan")


def spec(method: str, seed: int, setup: Setup) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"pbt-bench-{method}-{seed}",
        "parameters": list(task.PARAMETERS),
        "metrics": [{"name": task.METRIC, "goal": task.GOAL}],
        "algorithm": "random",
        "fidelity": {"name": "epochs", "min": 1, "max": setup.epochs},
        "seed": seed,
        "retries": {"max_retries": 0},
    }
    if method == "random":
        body["max_trials"] = setup.population
    elif method == "asha":
        body["early_stopping"] = {"rule": "asha", "reduction_factor": 3}
    else:
        body["early_stopping"] = {
            "rule": "pbt",
            "population": setup.population,
            "interval": setup.interval,
            "quantile": setup.quantile,
            "perturb": setup.perturb,
            "seed": seed,
        }
    return body


def run_random(study: Any, run: Run, setup: Setup) -> None:
    while trials := study.suggest(1):
        (trial,) = trials
        model = task.start(trial.params, run.seed * 1000 + trial.number)
        run.trials += 1
        score = task.WORST
        for epoch in range(1, setup.epochs + 1):
            score = task.train_epoch(model)
            run.epochs_spent += 1
            trial.report(epoch, {task.METRIC: score})
        run.finals.append((score, task.test_score(model)))
        trial.complete({task.METRIC: score})


def run_asha(study: Any, run: Run, setup: Setup) -> None:
    while run.epochs_spent < setup.budget:
        trials = study.suggest(1)
        if not trials:
            return
        (trial,) = trials
        if trial.resume_from_step:
            model = trial.load_checkpoint()
        else:
            model = task.start(trial.params, run.seed * 1000 + trial.number)
            run.trials += 1
        score = task.valid_score(model) if model.epochs else task.WORST
        stopped = False
        while model.epochs < setup.epochs and run.epochs_spent < setup.budget and not stopped:
            score = task.train_epoch(model)
            run.epochs_spent += 1
            stopped = trial.report(model.epochs, {task.METRIC: score})
        if model.epochs == setup.epochs:
            run.finals.append((score, task.test_score(model)))
        elif stopped:
            trial.save_checkpoint(model)
        trial.complete({task.METRIC: score})


def run_pbt(study: Any, run: Run, setup: Setup) -> None:
    members = study.suggest(setup.population)
    models = {t.number: task.start(t.params, run.seed * 1000 + t.number) for t in members}
    first = {t.number: float(t.params["eta0"]) for t in members}  # before any exploit
    run.trials = len(members)
    for epoch in range(1, setup.epochs + 1):
        for trial in members:
            model = models[trial.number]
            score = task.train_epoch(model)
            run.epochs_spent += 1
            trial.save_checkpoint(model, step=epoch)  # before the report: donors are current
            trial.report(epoch, {task.METRIC: score})
            if trial.action is not None:  # exploit: the donor's model, the explored params
                run.exploits += 1
                models[trial.number] = donor = trial.load_checkpoint()
                donor.epochs = model.epochs  # this member's compute goes on counting
                task.set_params(donor, trial.params)
    for trial in members:
        model = models[trial.number]
        score = task.valid_score(model)
        run.finals.append((score, task.test_score(model)))
        trial.complete({task.METRIC: score})
    histories = {t.number: t.data.metadata.get("pbt_history", []) for t in members}
    best = min(members, key=lambda t: t.values[task.METRIC] if t.values else task.WORST)
    run.schedule = lineage(best.number, setup.epochs, histories, first)


def lineage(
    number: int, until: int, histories: dict[int, list[Any]], first: dict[int, float]
) -> list[tuple[int, float]]:
    """``(step, eta0)`` each time the step size of member ``number``'s weights changed up to
    ``until``: its last exploit before then took a donor's weights, so what came before is
    the donor's lineage."""
    exploits = [h for h in histories[number] if h["step"] <= until]
    if not exploits:
        return [(0, first[number])]
    last = exploits[-1]
    before = lineage(int(last["from_trial"]), int(last["step"]), histories, first)
    return [*before, (int(last["step"]), float(last["params"]["eta0"]))]


RUNNERS = {"random": run_random, "asha": run_asha, "pbt": run_pbt}


def run_one(method: str, seed: int, setup: Setup) -> Run:
    """One run of ``method`` through a fresh local server."""
    from tuneforge.client import Client

    run = Run(method, seed)
    t0 = time.perf_counter()
    with local_server() as url, Client(url, client_id="bench") as client:
        study = client.create_study(spec(method, seed, setup))
        RUNNERS[method](study, run, setup)
    run.seconds = time.perf_counter() - t0
    if run.epochs_spent > setup.budget:
        raise AssertionError(f"{method} spent {run.epochs_spent} > {setup.budget} epochs")
    return run


def render(runs: list[Run], setup: Setup, meta: dict[str, Any]) -> str:
    seeds = sorted({r.seed for r in runs})
    by = {(r.method, r.seed): r for r in runs}
    lines = [
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; wall time {meta['wall']:.0f} s",
        f"- compute per run: {setup.budget} epochs ({setup.population} x {setup.epochs}); "
        f"pbt interval {setup.interval}, quantile {setup.quantile}, perturb {setup.perturb}",
        "",
        "| method | test MSE, mean | std | per seed | trials | epochs | exploits |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in METHODS:
        mine = [by[(method, s)] for s in seeds if (method, s) in by]
        if not mine:
            continue
        scores = [r.score for r in mine]
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        per_seed = " ".join(f"{x:.4f}" for x in scores)
        lines.append(
            f"| {method} | {statistics.mean(scores):.4f} | {std:.4f} | {per_seed} | "
            f"{statistics.mean(r.trials for r in mine):.1f} | "
            f"{statistics.mean(r.epochs_spent for r in mine):.0f} | "
            f"{statistics.mean(r.exploits for r in mine):.1f} |"
        )
    lines += ["", *verdict(by, seeds)]
    schedules = [(r.seed, r.schedule) for r in runs if r.method == "pbt" and r.schedule]
    if schedules:
        lines += ["", "`eta0` along the lineage of pbt's best final model (step: value):", ""]
        for seed, schedule in schedules:
            path = " → ".join(f"{step}: {eta:.2g}" for step, eta in schedule)
            lines.append(f"- seed {seed}: {path}")
    return "\n".join(lines)


def verdict(by: dict[tuple[str, int], Run], seeds: list[int]) -> list[str]:
    out = []
    for other in ("random", "asha"):
        both = [s for s in seeds if ("pbt", s) in by and (other, s) in by]
        pairs = [(by[("pbt", s)].score, by[(other, s)].score) for s in both]
        if not pairs:
            continue
        gaps = [o - p for p, o in pairs]  # positive: pbt's error is lower
        mean_gap = statistics.mean(gaps)
        wins = sum(g > 0 for g in gaps)
        met = "met" if mean_gap > 0 else "NOT met"
        out.append(
            f"- pbt vs {other}: {other}'s error minus pbt's {mean_gap:+.4f} on average (pbt ahead "
            f"on {wins} of {len(gaps)} "
            f"seeds; per-seed gaps {' '.join(f'{g:+.4f}' for g in gaps)}): target {met}"
        )
    return out


def write_section(path: str, text: str) -> None:
    with open(path) as fh:
        doc = fh.read()
    head, rest = doc.split(BEGIN, 1)
    with open(path, "w") as fh:
        fh.write(f"{head}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.population_pbt")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--population", type=int, default=Setup.population)
    parser.add_argument("--epochs", type=int, default=Setup.epochs)
    parser.add_argument("--interval", type=int, default=Setup.interval)
    parser.add_argument("--perturb", type=float, default=Setup.perturb)
    parser.add_argument("--quantile", type=float, default=Setup.quantile)
    parser.add_argument("--quick", action="store_true", help="1 seed, 4 members, 6 epochs")
    parser.add_argument("--out", help=f"write the report here ({DOC}: its generated section)")
    parser.add_argument("--json", help="write the raw runs here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    setup = Setup(args.population, args.epochs, args.interval, args.quantile, args.perturb)
    seeds = args.seeds
    if args.quick:
        setup, seeds = Setup(population=4, epochs=6, interval=2, quantile=0.25), 1
    command = "python -m bench.population_pbt" + (" " + shlex.join(argv) if argv else "")
    meta: dict[str, Any] = {"command": command, "date": dt.datetime.now(dt.UTC)}
    meta["date"] = meta["date"].strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.perf_counter()
    runs = []
    for seed in range(args.seed_start, args.seed_start + seeds):
        for method in args.methods:
            runs.append(run_one(method, seed, setup))
            r = runs[-1]
            print(f"{method} seed {seed}: {r.score:.4f} ({r.seconds:.0f} s)", file=sys.stderr)
    meta["wall"] = time.perf_counter() - t0
    text = render(runs, setup, meta)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "runs": [asdict(r) for r in runs]}, fh)
    if args.out:
        if args.out.endswith("pbt.md"):
            write_section(args.out, text)
        else:
            with open(args.out, "w") as fh:
                fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
