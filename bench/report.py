"""Statistics and the markdown report of a benchmark run."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from .problems import Problem
from .runners import mode_workers

AUTO = "tf-auto"
RIVALS = ("optuna-tpe", "optuna-gp")
RANDOMS = ("tf-random", "optuna-random")
TIE_FRACTION = 0.01
PARALLEL_TARGET = 1.10


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.3g}"


def mean_std(xs: Sequence[float]) -> str:
    if len(xs) < 2:
        return fmt(xs[0]) if xs else "n/a"
    return f"{fmt(statistics.fmean(xs))} ± {fmt(statistics.stdev(xs))}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class Finals:
    """Final best values of the sequential runs: ``finals[problem][optimizer] = [per seed]``."""

    def __init__(
        self, runs: Sequence[dict[str, Any]], problems: Sequence[Problem], mode: str = "seq"
    ):
        self.problems = list(problems)
        self.by: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in sorted(runs, key=lambda r: r["seed"]):
            if r["mode"] == mode:
                self.by[r["problem"]][r["optimizer"]].append(min(r["values"]))
        self.best_any: dict[str, float] = {}
        self.random_median: dict[str, float] = {}
        for p in self.problems:
            values = [v for vs in self.by[p.name].values() for v in vs]
            if not values:
                continue
            self.best_any[p.name] = min(values)
            rand = next((self.by[p.name][o] for o in RANDOMS if self.by[p.name].get(o)), None)
            self.random_median[p.name] = statistics.median(rand) if rand else math.nan

    def regret(self, p: Problem, value: float) -> float:
        return value - p.optimum if p.optimum is not None else value

    def span(self, name: str) -> float:
        return self.random_median[name] - self.best_any[name]

    def score(self, name: str, value: float) -> float:
        span = self.span(name)
        if not span > 0:
            return math.nan
        return (value - self.best_any[name]) / span


def final_table(f: Finals, optimizers: Sequence[str]) -> str:
    rows = []
    for p in f.problems:
        what = "regret" if p.optimum is not None else "CV error"
        cells = [mean_std([f.regret(p, v) for v in f.by[p.name].get(o, [])]) for o in optimizers]
        rows.append([p.name, what, *cells])
    return table(["problem", "reported", *optimizers], rows)


def score_table(f: Finals, optimizers: Sequence[str]) -> tuple[str, dict[str, float]]:
    rows, per_opt = [], defaultdict(list)
    for p in f.problems:
        cells = []
        for o in optimizers:
            scores = [f.score(p.name, v) for v in f.by[p.name].get(o, [])]
            m = (
                statistics.fmean(scores)
                if scores and not any(map(math.isnan, scores))
                else math.nan
            )
            if not math.isnan(m):
                per_opt[o].append((p.kind, m))
            cells.append(fmt(m))
        rows.append([p.name, fmt(f.best_any[p.name]), fmt(f.random_median[p.name]), *cells])
    means = {
        o: statistics.fmean(m for _, m in per_opt[o]) if per_opt[o] else math.nan
        for o in optimizers
    }
    for label, kinds in (
        ("mean (all)", None),
        ("mean (synthetic+mixed)", ("synthetic", "mixed")),
        ("mean (sklearn)", ("sklearn",)),
    ):
        vals = []
        for o in optimizers:
            xs = [m for k, m in per_opt[o] if kinds is None or k in kinds]
            vals.append(f"**{fmt(statistics.fmean(xs))}**" if xs else "n/a")
        if any(v != "n/a" for v in vals):
            rows.append([label, "", "", *vals])
    header = ["problem", "best found (0)", "random median (1)", *optimizers]
    return table(header, rows), means


def wins_table(f: Finals) -> tuple[str, dict[str, dict[str, Any]]]:
    rows, summary = [], {}
    counts = {r: {"win": 0, "tie": 0, "loss": 0} for r in RIVALS}
    for p in f.problems:
        mine = f.by[p.name].get(AUTO)
        if not mine:
            continue
        row = [p.name, fmt(statistics.fmean(mine))]
        tol = TIE_FRACTION * f.span(p.name)
        for rival in RIVALS:
            theirs = f.by[p.name].get(rival)
            if not theirs:
                row += ["n/a", "n/a"]
                continue
            diff = statistics.fmean(theirs) - statistics.fmean(mine)
            outcome = "win" if diff > tol else "loss" if diff < -tol else "tie"
            counts[rival][outcome] += 1
            row += [fmt(statistics.fmean(theirs)), outcome]
        rows.append(row)
    header = ["problem", "auto mean", "optuna-tpe mean", "vs TPE", "optuna-gp mean", "vs GP"]
    lines = [table(header, rows), ""]
    for rival in RIVALS:
        c = counts[rival]
        n = sum(c.values())
        if n:
            frac = c["win"] / n
            summary[rival] = {**c, "n": n, "won": frac}
            lines.append(
                f"- auto vs {rival}: {c['win']} wins / {c['tie']} ties / {c['loss']} losses "
                f"over {n} problems: won {frac:.0%} (wins + ties/2: {(c['win'] + c['tie'] / 2) / n:.0%})"
            )
    return "\n".join(lines), summary


def overhead_table(runs: Sequence[dict[str, Any]], optimizers: Sequence[str]) -> str:
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    walls: dict[tuple[str, str], list[float]] = defaultdict(list)
    kinds = {}
    for r in runs:
        mode = r["mode"]
        kind = f"parallel ({mode_workers(mode)} workers)" if mode != "seq" else r.get("kind", "")
        kinds[kind] = True
        groups[(kind, r["optimizer"])].extend(r["suggest_seconds"])
        walls[(kind, r["optimizer"])].append(r["seconds"])
    rows = []
    for kind in kinds:
        for o in optimizers:
            if groups.get((kind, o)):
                ts = groups[(kind, o)]
                rows.append(
                    [
                        kind,
                        o,
                        f"{statistics.median(ts) * 1000:.1f}",
                        f"{max(ts) * 1000:.0f}",
                        f"{statistics.fmean(walls[(kind, o)]):.1f}",
                    ]
                )
    return table(
        ["problems", "optimizer", "median suggest (ms)", "max suggest (ms)", "mean run wall (s)"],
        rows,
    )


def latency_table(rows: Sequence[dict[str, Any]]) -> tuple[str, dict[str, float]]:
    by = {(r["optimizer"], r["n"]): r for r in rows}
    levels = sorted({r["n"] for r in rows})
    out, targets = [], {}
    for n in levels:
        a, g, t = by.get(("tf-auto", n)), by.get(("optuna-gp", n)), by.get(("optuna-tpe", n))
        ratio = a["median"] / g["median"] if a and g else math.nan
        targets[f"ratio@{n}"] = ratio
        if a:
            targets[f"auto@{n}"] = a["median"]
        out.append(
            [
                n,
                *(
                    f"{x['median'] * 1000:.1f} (first {x['first'] * 1000:.0f})" if x else "n/a"
                    for x in (a, g, t)
                ),
                f"{ratio:.2f}",
            ]
        )
    header = [
        "completed trials",
        "tf-auto (ms)",
        "optuna GPSampler (ms)",
        "optuna TPESampler (ms)",
        "auto / GPSampler",
    ]
    return table(header, out), targets


def batch_table(rows: Sequence[dict[str, Any]], reference: dict[int, float]) -> str:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r["problem"]].append(r)
    out = []
    for name, rs in by.items():
        dim = rs[0]["dim"]
        out.append(
            [
                name,
                dim,
                len(rs),
                fmt(statistics.fmean(r["min_pairwise"] for r in rs)),
                fmt(min(r["min_pairwise"] for r in rs)),
                fmt(reference.get(dim, math.nan)),
                sum(r["duplicates"] for r in rs),
                sum(r.get("near_duplicates", 0) for r in rs),
                sum(r["repeats_history"] for r in rs),
                fmt(statistics.fmean(r["min_to_history"] for r in rs)),
                f"{statistics.median(r['seconds'] for r in rs) * 1000:.0f}",
            ]
        )
    header = [
        "problem",
        "dim",
        "seeds",
        "min pairwise (mean)",
        "min pairwise (worst seed)",
        "8 uniform points (median)",
        "duplicates in batch",
        "near-duplicate pairs (< 0.01)",
        "repeats of history",
        "min dist to history (mean)",
        "suggest count=8 (ms)",
    ]
    return table(header, out)


def parallel_table(f_seq: Finals, f_par: Finals) -> tuple[str, dict[str, float]]:
    rows, ratios = [], {}
    seq_scores: list[float] = []
    par_scores: list[float] = []
    for p in f_par.problems:
        seq, par = f_seq.by[p.name].get(AUTO), f_par.by[p.name].get(AUTO)
        if not seq or not par:
            continue
        rs = statistics.fmean(f_seq.regret(p, v) for v in seq)
        rp = statistics.fmean(f_seq.regret(p, v) for v in par)
        ratio = rp / rs if rs > 0 else math.nan
        ratios[p.name] = ratio
        ss = statistics.fmean(f_seq.score(p.name, v) for v in seq)
        sp = statistics.fmean(f_seq.score(p.name, v) for v in par)
        verdict = "yes" if ratio <= PARALLEL_TARGET else "no"
        rows.append([p.name, fmt(rs), fmt(rp), f"{ratio:.2f}", fmt(ss), fmt(sp), verdict])
        seq_scores.append(ss)
        par_scores.append(sp)
    if seq_scores:
        ms, mp = statistics.fmean(seq_scores), statistics.fmean(par_scores)
        set_ratio = mp / ms if ms > 0 else math.nan
        ratios["set (mean normalized score)"] = set_ratio
        verdict = "yes" if set_ratio <= PARALLEL_TARGET else "no"
        rows.append(
            ["**set (mean)**", "", "", "", fmt(ms), fmt(mp), f"{verdict} ({set_ratio:.2f})"]
        )
    header = [
        "problem",
        "sequential regret (mean)",
        "8-way regret (mean)",
        "ratio 8-way / seq",
        "seq normalized score",
        "8-way normalized score",
        "ratio ≤ 1.10",
    ]
    return table(header, rows), ratios


def workers_table(f_seq: Finals, by_workers: dict[int, Finals]) -> tuple[str, dict[str, float]]:
    """auto's mean normalized score per problem with 1 (sequential) and each number of
    workers, on the sequential runs' scale, and each set mean over the sequential one."""
    problems = [p for p in f_seq.problems if f_seq.by[p.name].get(AUTO)]
    problems = [p for p in problems if all(f.by[p.name].get(AUTO) for f in by_workers.values())]
    rows, ratios = [], {}
    base = math.nan
    for workers, finals in [(1, f_seq), *sorted(by_workers.items())]:
        scores = [
            statistics.fmean(f_seq.score(p.name, v) for v in finals.by[p.name][AUTO])
            for p in problems
        ]
        if not scores:
            continue
        mean = statistics.fmean(scores)
        base = mean if workers == 1 else base
        ratio = mean / base if base > 0 else math.nan
        ratios[str(workers)] = ratio
        shown = f"{ratio:.2f}" if math.isfinite(ratio) else "n/a (sequential score 0)"
        rows.append([workers, *(fmt(x) for x in scores), f"**{fmt(mean)}**", shown])
    header = ["workers", *(p.name for p in problems), "set (mean)", "set / sequential"]
    return table(header, rows), ratios


def parallel_peers_table(
    f_seq: Finals, f_par: Finals, optimizers: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """Every optimizer with 8-way runs: sequential and 8-way normalized scores per problem (the
    sequential runs' scale), each optimizer's 8-way / sequential ratio, and auto's 8-way
    runs against each rival's 8-way runs (same tie rule as :func:`wins_table`)."""
    opts = [o for o in optimizers if any(f_par.by[p.name].get(o) for p in f_par.problems)]
    rows: list[list[str]] = []
    seq_scores: dict[str, list[float]] = defaultdict(list)
    par_scores: dict[str, list[float]] = defaultdict(list)
    for p in f_par.problems:
        row = [p.name]
        for o in opts:
            seq, par = f_seq.by[p.name].get(o), f_par.by[p.name].get(o)
            if not seq or not par:
                row += ["n/a", "n/a"]
                continue
            ss = statistics.fmean(f_seq.score(p.name, v) for v in seq)
            sp = statistics.fmean(f_seq.score(p.name, v) for v in par)
            seq_scores[o].append(ss)
            par_scores[o].append(sp)
            row += [fmt(ss), fmt(sp)]
        rows.append(row)
    summary: dict[str, Any] = {}
    mean_row, ratio_row = ["**set (mean)**"], ["**8-way / sequential**"]
    for o in opts:
        ms = statistics.fmean(seq_scores[o]) if seq_scores[o] else math.nan
        mp = statistics.fmean(par_scores[o]) if par_scores[o] else math.nan
        ratio = mp / ms if ms > 0 else math.nan
        summary[o] = {"seq": ms, "par8": mp, "ratio": ratio}
        mean_row += [f"**{fmt(ms)}**", f"**{fmt(mp)}**"]
        ratio_row += ["", f"**{ratio:.2f}**"]
    rows += [mean_row, ratio_row]
    header = ["problem"] + [f"{o} {m}" for o in opts for m in ("seq", "8-way")]
    lines = [table(header, rows), ""]
    if AUTO in opts:
        for rival in (o for o in opts if o in RIVALS):
            counts = {"win": 0, "tie": 0, "loss": 0}
            for p in f_par.problems:
                mine, theirs = f_par.by[p.name].get(AUTO), f_par.by[p.name].get(rival)
                if not mine or not theirs:
                    continue
                diff = statistics.fmean(theirs) - statistics.fmean(mine)
                tol = TIE_FRACTION * f_seq.span(p.name)
                counts["win" if diff > tol else "loss" if diff < -tol else "tie"] += 1
            summary[f"auto-vs-{rival}"] = counts
            lines.append(
                f"- 8-way auto vs 8-way {rival}: {counts['win']} wins / {counts['tie']} ties / "
                f"{counts['loss']} losses"
            )
    return "\n".join(lines), summary
