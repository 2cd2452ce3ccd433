"""Tables, targets and the plot of the early-stopping benchmark (``bench/early_stopping.py``).

Every number comes from the runs' logs: a run's ``curve`` lists ``(resource
spent, score)`` each time a configuration finished training to the full
fidelity. "Best score at resource r" is the best of those known once ``r``
steps were spent; a run with no fully trained configuration yet has none.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from .es_runs import best_at, first_reaching

RANDOM = "random"
TUNEFORGE_RULES = ("tf-median", "tf-asha", "tf-hyperband", "tf-bohb")
OPTUNA_PRUNERS = ("optuna-sha", "optuna-hyperband")
#: A method "reaches" random search's final score when it is within this fraction of it.
WITHIN = 0.005
TARGET_RESOURCE = 0.30
TARGET_BUSY = 0.90
#: Points of the best-score-vs-resource curves, as fractions of the budget.
GRID = tuple(i / 100 for i in range(1, 101))

Run = dict[str, Any]


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def mean_std(xs: Sequence[float], digits: int = 4) -> str:
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return fmt(xs[0], digits)
    return f"{fmt(statistics.fmean(xs), digits)} ± {fmt(statistics.stdev(xs), digits)}"


class Results:
    """The runs of one benchmark, grouped: ``runs[(task, method, workers)] = [run per seed]``.

    ``curve`` names the run field the scores come from: ``"curve"`` (configurations
    trained to the full fidelity, the default) or ``"any_curve"`` (any trained model).
    """

    def __init__(self, runs: Sequence[Run], curve: str = "curve") -> None:
        self.runs: dict[tuple[str, str, int], list[Run]] = defaultdict(list)
        for r in sorted(runs, key=lambda r: r["seed"]):
            self.runs[(r["task"], r["method"], r["workers"])].append({**r, "curve": r[curve]})

    def of(self, task: str, method: str, workers: int = 1) -> list[Run]:
        return self.runs.get((task, method, workers), [])

    def finals(self, task: str, method: str, workers: int = 1) -> list[float]:
        """Each seed's best full-budget score at the end of the budget (runs with one)."""
        out = []
        for r in self.of(task, method, workers):
            best = best_at(r["curve"], r["budget"])
            if best is not None:
                out.append(best)
        return out

    def final_mean(self, task: str, method: str, workers: int = 1) -> float:
        xs = self.finals(task, method, workers)
        return statistics.fmean(xs) if xs else math.nan

    def target(self, task: str) -> float:
        """Random search's final score (mean over seeds), less ``WITHIN``."""
        return self.final_mean(task, RANDOM) * (1 - WITHIN)

    def mean_curve(self, task: str, method: str, workers: int = 1) -> list[float]:
        """Mean over seeds of the best score at each :data:`GRID` fraction of the budget
        (``nan`` where some seed has no fully trained configuration yet)."""
        runs = self.of(task, method, workers)
        out = []
        for frac in GRID:
            values = [best_at(r["curve"], round(frac * r["budget"])) for r in runs]
            ok = runs and all(v is not None for v in values)
            out.append(statistics.fmean(v for v in values if v is not None) if ok else math.nan)
        return out

    def reach_fraction(self, task: str, method: str, workers: int = 1) -> float | None:
        """The smallest budget fraction at which the mean curve reaches the target."""
        target = self.target(task)
        for frac, value in zip(GRID, self.mean_curve(task, method, workers), strict=True):
            if not math.isnan(value) and value >= target:
                return frac
        return None

    def seed_reach(self, task: str, method: str, workers: int = 1) -> list[float | None]:
        """Per seed: the budget fraction at which its best reached the target (``None``: never)."""
        target = self.target(task)
        out: list[float | None] = []
        for r in self.of(task, method, workers):
            spent = first_reaching(r["curve"], target)
            out.append(None if spent is None else spent / r["budget"])
        return out

    def busy(self, task: str, method: str, workers: int) -> list[float]:
        """Per run: time inside training / (workers x wall time)."""
        return [
            r["busy_seconds"] / (r["workers"] * r["wall_seconds"])
            for r in self.of(task, method, workers)
            if r["wall_seconds"] > 0
        ]


def final_table(res: Results, tasks: Sequence[str], methods: Sequence[str]) -> str:
    rows = [[t, *(mean_std(res.finals(t, m)) for m in methods)] for t in tasks]
    return table(["task", *methods], rows)


def reach_table(res: Results, tasks: Sequence[str], methods: Sequence[str]) -> str:
    rows = []
    for t in tasks:
        cells = [fmt(res.target(t))]
        for m in methods:
            frac = res.reach_fraction(t, m)
            per_seed = res.seed_reach(t, m)
            hit = [f for f in per_seed if f is not None]
            median = f"{statistics.median(hit):.0%}" if hit else "-"
            cells.append(
                f"{'never' if frac is None else f'{frac:.0%}'} ({len(hit)}/{len(per_seed)}, {median})"
            )
        rows.append([t, *cells])
    return table(["task", "target", *methods], rows)


def anytime_table(res: Results, tasks: Sequence[str], methods: Sequence[str]) -> str:
    rows = []
    for t in tasks:
        for frac in (0.1, 0.3, 0.5):
            index = GRID.index(frac)
            cells = [fmt(res.mean_curve(t, m)[index]) for m in methods]
            rows.append([t, f"{frac:.0%}", *cells])
    return table(["task", "resource", *methods], rows)


def workers_table(res: Results, tasks: Sequence[str], methods: Sequence[str], n: int) -> str:
    rows = []
    for t in tasks:
        for m in methods:
            runs = res.of(t, m, n)
            if not runs:
                continue
            busy = res.busy(t, m, n)
            single = res.of(t, m, 1)
            rows.append(
                [
                    t,
                    m,
                    mean_std(res.finals(t, m, 1)),
                    mean_std(res.finals(t, m, n)),
                    f"{statistics.fmean(busy):.1%} (min {min(busy):.1%})",
                    f"{1000 * statistics.fmean(step_seconds(r) for r in runs):.0f}",
                    f"{1000 * statistics.fmean(overhead_seconds(r) for r in runs):.0f}",
                    cpu_per_step(runs),
                    f"{statistics.fmean(r['wall_seconds'] for r in runs):.1f}",
                    f"{statistics.fmean(r['wall_seconds'] for r in single):.1f}"
                    if single
                    else "n/a",
                ]
            )
    header = [
        "task",
        "method",
        "best, 1 worker",
        f"best, {n} workers",
        "busy",
        "ms training / step",
        "ms else / step",
        "CPU ms / step",
        "wall s",
        "wall s (1 worker)",
    ]
    return table(header, rows)


def step_seconds(run: Run) -> float:
    """Mean time inside training and validation per step."""
    return run["busy_seconds"] / max(run["steps"], 1)


def cpu_per_step(runs: Sequence[Run]) -> str:
    """Mean CPU time of the benchmark's process per step (server, clients, training)."""
    cpu = [r["cpu_seconds"] / max(r["steps"], 1) for r in runs if r.get("cpu_seconds")]
    return f"{1000 * statistics.fmean(cpu):.0f}" if cpu else "n/a"


def overhead_seconds(run: Run) -> float:
    """Mean worker time per step outside training: suggest, reports, checkpoints, waiting."""
    idle = run["workers"] * run["wall_seconds"] - run["busy_seconds"]
    return idle / max(run["steps"], 1)


def targets(
    res: Results, real: Sequence[str], methods: Sequence[str], n_workers: int
) -> list[tuple[str, bool, str]]:
    """Each target of the issue: ``(name, met, the numbers behind it)``."""
    out = []
    fast = []
    for t in real:
        fr = {m: res.reach_fraction(t, m) for m in ("tf-asha", "tf-bohb") if m in methods}
        best = min((f for f in fr.values() if f is not None), default=None)
        fast.append(best is not None and best <= TARGET_RESOURCE)
        fast_text = ", ".join(f"{m} {'never' if f is None else f'{f:.0%}'}" for m, f in fr.items())
        out.append((f"{t}: ASHA or BOHB reaches random's final score", fast[-1], fast_text))
    ahead, bohb = 0, 0
    details, bohb_details = [], []
    for t in real:
        tf = max(TUNEFORGE_RULES, key=lambda m: _or_low(res.final_mean(t, m)))
        op = max(OPTUNA_PRUNERS, key=lambda m: _or_low(res.final_mean(t, m)))
        a, b = res.final_mean(t, tf), res.final_mean(t, op)
        ahead += a > b
        details.append(f"{t}: {tf} {fmt(a)} vs {op} {fmt(b)}")
        h, k = res.final_mean(t, "tf-bohb"), res.final_mean(t, "tf-hyperband")
        bohb += h > k
        bohb_details.append(f"{t}: {fmt(h)} vs {fmt(k)}")
    out.append(
        (
            "tuneforge's best rule ahead of Optuna's best pruner on >= 2 of 3",
            ahead >= 2,
            "; ".join(details),
        )
    )
    out.append(("BOHB ahead of Hyperband on >= 2 of 3", bohb >= 2, "; ".join(bohb_details)))
    for m in ("tf-asha", "tf-hyperband"):
        busy = [b for t in res_tasks(res, n_workers) for b in res.busy(t, m, n_workers)]
        if busy:
            low = min(busy)
            out.append(
                (
                    f"{m} with {n_workers} workers keeps them >= {TARGET_BUSY:.0%} busy",
                    low >= TARGET_BUSY,
                    f"mean {statistics.fmean(busy):.1%}, lowest run {low:.1%}",
                )
            )
    return out


def res_tasks(res: Results, workers: int) -> list[str]:
    return sorted({t for (t, _m, w) in res.runs if w == workers})


def _or_low(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def plot(res: Results, tasks: Sequence[str], methods: Sequence[str], path: str) -> str | None:
    """Best score vs resource, one panel per task, mean over seeds; ``None`` when written,
    else why not (matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 'matplotlib is not installed (pip install -e ".[dev,bench]")'
    cols = min(len(tasks), 2)
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.0 * rows), squeeze=False)
    styles = {m: ("--" if m.startswith("optuna") else ":" if m == RANDOM else "-") for m in methods}
    for ax, t in zip(axes.flat, tasks, strict=False):
        for m in methods:
            ax.plot([100 * g for g in GRID], res.mean_curve(t, m), styles[m], label=m, lw=1.6)
        target = res.target(t)
        ax.axhline(target, color="grey", lw=0.8)
        ax.set_title(t)
        ax.set_xlabel("training resource spent (% of random search's)")
        ax.set_ylabel("best validation accuracy (mean of seeds)")
        finals = [res.final_mean(t, m) for m in methods]
        low = min((v for v in finals if not math.isnan(v)), default=target)
        ax.set_ylim(min(low, target) - 0.03, max(_or_low(v) for v in finals) + 0.01)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Best fully trained configuration vs resource (grey: random's final - 0.5%)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None
