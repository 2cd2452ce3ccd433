"""Crossing learning curves: Hyperband keeps a late bloomer that the median rule and ASHA lose.

A third of 27 configurations are late bloomers: the worst at every rung (1, 3
and 9 epochs) but the best at the full 27. The engine's rules are driven by a
small single-worker simulation (suggest's promotions first, then a new
configuration; every epoch is a measurement; a paused trial waits for
promotion; at the end the paused ones are pruned, as the server does).

The median rule (judging from the first completed trial on) and ASHA judge
every trial early, so they stop every late bloomer. Hyperband's last bracket trains its trials fully (trial 16, a late
bloomer, falls in it), so the study's best trial is a late bloomer.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tuneforge.core.decisions import Pause, Prune
from tuneforge.core.stopping import StoppingContext, TrialsPeerView, create_rule
from tuneforge.core.stopping.hyperband import HyperbandRule
from tuneforge.core.trials import Goal, Measurement, Metric, Trial, TrialState

ACC = Metric("acc", Goal.MAXIMIZE)
MAX = 27
FIDELITY = {"name": "epochs", "min": 1, "max": MAX}
N = 27


def late(number: int) -> bool:
    return number % 3 == 1


def curve(number: int, epoch: int) -> float:
    if late(number):  # slow and steady: 0.23 at epoch 1, 0.43 at 9, 0.9 at 27
        return 0.2 + 0.7 * epoch / MAX
    plateau = 0.5 + 0.3 * (number * 7 % N) / N  # quick to rise, flat after a few epochs
    return plateau * (1.0 - math.exp(-epoch / 1.5))


def simulate(spec: dict[str, Any]) -> dict[int, Trial]:
    """Run ``N`` configurations through the rule; the trials as they end."""
    rule = create_rule(spec, FIDELITY)
    trials: dict[int, Trial] = {}
    created = 0
    for _ in range(10 * N):
        busy = created >= N
        resumes = rule.promotions(list(trials.values()), ACC, final=busy)
        if resumes:
            number, epoch = resumes[0].number, resumes[0].from_step
        elif not busy:
            number, epoch = created, 0
            created += 1
        else:
            break
        trials[number] = train(rule, trials, number, epoch)
    for number, t in trials.items():  # the study ends: the paused are pruned
        if t.state == TrialState.PAUSED:
            trials[number] = dataclasses.replace(t, state=TrialState.PRUNED)
    return trials


def train(rule: Any, trials: dict[int, Trial], number: int, epoch: int) -> Trial:
    old = trials.get(number)
    me = Trial(number, TrialState.ACTIVE, {}, measurements=old.measurements if old else ())
    others = tuple(t for n, t in trials.items() if n != number)
    while epoch < MAX:
        epoch += 1
        step = Measurement(step=epoch, values={"acc": curve(number, epoch)})
        me = dataclasses.replace(me, measurements=(*me.measurements, step))
        view = TrialsPeerView([*others, me], "acc", number, goal=Goal.MAXIMIZE)
        decision = rule.decide(StoppingContext(trial=me, metric=ACC, peers=view, others=others))
        if isinstance(decision, Pause):
            return dataclasses.replace(me, state=TrialState.PAUSED)
        if isinstance(decision, Prune):
            return dataclasses.replace(me, state=TrialState.PRUNED)
    return dataclasses.replace(me, state=TrialState.COMPLETED)


def best_completed(trials: dict[int, Trial]) -> int:
    done = [t for t in trials.values() if t.state == TrialState.COMPLETED]
    return max(done, key=lambda t: t.measurements[-1].values["acc"]).number


def trained_fully(trials: dict[int, Trial]) -> set[int]:
    return {n for n, t in trials.items() if t.measurements[-1].step == MAX}


def test_the_curves_cross() -> None:
    for epoch in (1, 3, 9):
        assert max(curve(n, epoch) for n in range(N) if late(n)) < min(
            curve(n, epoch) for n in range(N) if not late(n)
        )
    assert min(curve(n, MAX) for n in range(N) if late(n)) > max(
        curve(n, MAX) for n in range(N) if not late(n)
    )


def test_the_median_rule_and_asha_lose_every_late_bloomer() -> None:
    median = simulate({"rule": "median", "n_startup_trials": 1, "min_peers": 1})
    asha = simulate({"rule": "asha"})
    for trials in (median, asha):
        assert len(trials) == N
        assert not any(late(n) for n in trained_fully(trials))
        assert not late(best_completed(trials))


def test_hyperband_keeps_a_late_bloomer() -> None:
    trials = simulate({"rule": "hyperband"})
    rule = create_rule({"rule": "hyperband"}, FIDELITY)
    assert isinstance(rule, HyperbandRule)
    assert rule.bracket_of(trials[16]) == 3  # the bracket without early stopping
    assert len(trials) == N and {t.state for t in trials.values()} <= {
        TrialState.COMPLETED,
        TrialState.PRUNED,
    }
    assert 16 in trained_fully(trials) and late(best_completed(trials))
    assert curve(best_completed(trials), MAX) > max(curve(n, MAX) for n in range(N) if not late(n))
    used = sum(t.measurements[-1].step for t in trials.values())
    assert used < N * MAX / 2  # still well under training every configuration fully
