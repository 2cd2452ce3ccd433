"""``StoppingRule.next_decision_step``: per rule, the first later step where it can decide,
checked against the rule's own ``decide`` (nothing but continue below that step)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tuneforge.core.decisions import CONTINUE, Prune
from tuneforge.core.stopping import StoppingContext, TrialsPeerView, create_rule
from tuneforge.core.stopping.hyperband import HyperbandRule
from tuneforge.core.trials import Goal, Measurement, Metric, Trial, TrialState

ACC = Metric("acc", Goal.MAXIMIZE)
FIDELITY = {"name": "epochs", "min": 1, "max": 81}


def trial(number: int, steps: Sequence[int], value: float = 0.5, **kw: Any) -> Trial:
    ms = tuple(Measurement(step=s, values={"acc": value}) for s in steps)
    return Trial(number=number, state=TrialState.ACTIVE, params={}, measurements=ms, **kw)


def ctx(rule: Any, me: Trial, others: Sequence[Trial] = ()) -> StoppingContext:
    peers = TrialsPeerView([*others, me], "acc", me.number, goal=Goal.MAXIMIZE)
    return StoppingContext(trial=me, metric=ACC, peers=peers, others=tuple(others))


def test_asha_with_reduction_factor_3_from_1_decides_at_1_3_9_27() -> None:
    rule = create_rule({"rule": "asha", "reduction_factor": 3}, FIDELITY)
    me = trial(0, [])
    expected = {0: 1, 1: 3, 2: 3, 3: 9, 8: 9, 9: 27, 26: 27, 27: None, 80: None}
    assert {s: rule.next_decision_step(me, s) for s in expected} == expected


def test_asha_never_decides_below_its_next_decision_step() -> None:
    """A trial reporting each step after ``s`` up to the announced step: only that step
    needs the rung ranking, and a trial worse than every peer is paused only there."""
    rule = create_rule({"rule": "asha", "reduction_factor": 3}, FIDELITY)
    peers = [trial(n, range(1, 82), value=0.9) for n in range(1, 10)]
    for s in range(0, 80):
        upcoming = rule.next_decision_step(trial(0, []), s)
        top = upcoming if upcoming is not None else 82
        for t in range(s + 1, min(top, 82)):
            me = trial(0, [*range(1, s + 1), t], value=0.1)
            assert not rule.needs_others(me, ACC), (s, t)
            assert rule.decide(ctx(rule, me, peers)) == CONTINUE, (s, t)
        if upcoming is not None:
            me = trial(0, [*range(1, s + 1), upcoming], value=0.1)
            assert rule.decide(ctx(rule, me, peers)) != CONTINUE, (s, upcoming)


@pytest.mark.parametrize("name", ["hyperband", "bohb"])
def test_hyperband_and_bohb_start_at_the_trials_bracket(name: str) -> None:
    rule = create_rule({"rule": name, "reduction_factor": 3}, FIDELITY)
    assert isinstance(rule, HyperbandRule)
    rungs = [1, 3, 9, 27]
    seen = set()
    for number in range(40):
        me = trial(number, [])
        bracket = rule.bracket_of(me)
        seen.add(bracket)
        first = rungs[bracket] if bracket < len(rungs) else None
        assert rule.next_decision_step(me, 0) == first, (number, bracket)
        if first is not None:
            after = rungs[bracket + 1] if bracket + 1 < len(rungs) else None
            assert rule.next_decision_step(me, first) == after
    assert seen == {0, 1, 2, 3, 4}  # the last bracket trains to max: never decided
    retry = trial(41, [], retry_of=3)
    assert rule.next_decision_step(retry, 0) == rule.next_decision_step(trial(3, []), 0)


def test_pbt_decides_at_each_interval_boundary_before_the_last_step() -> None:
    rule = create_rule({"rule": "pbt", "interval": 4}, {"name": "e", "min": 1, "max": 12})
    me = trial(0, [])
    got = [rule.next_decision_step(me, s) for s in range(0, 13)]
    assert got == [4, 4, 4, 4, 8, 8, 8, 8, None, None, None, None, None]
    for s in range(0, 12):
        upcoming = got[s]
        for t in range(s + 1, upcoming if upcoming is not None else 13):
            assert not rule.needs_others(trial(0, [*range(1, s + 1), t]), ACC), (s, t)
        if upcoming is not None:
            assert rule.needs_others(trial(0, [*range(1, s + 1), upcoming]), ACC)


@pytest.mark.parametrize("name", ["median", "percentile"])
def test_median_rules_decide_past_the_warm_up_on_the_interval(name: str) -> None:
    options = {"n_warmup_steps": 3, "interval_steps": 2, "n_startup_trials": 0, "min_peers": 1}
    if name == "percentile":
        options["percentile"] = 50.0
    rule = create_rule({"rule": name, **options})
    me = trial(0, [])
    got = [rule.next_decision_step(me, s) for s in range(0, 10)]
    assert got == [3, 3, 3, 5, 5, 7, 7, 9, 9, 11]
    done = [
        Trial(
            number=n,
            state=TrialState.COMPLETED,
            params={},
            values={"acc": 0.9},
            measurements=tuple(Measurement(step=s, values={"acc": 0.9}) for s in range(1, 12)),
        )
        for n in range(1, 4)
    ]
    for s in range(0, 10):
        for t in range(s + 1, got[s]):
            decided = rule.decide(ctx(rule, trial(0, [t], value=0.1), done))
            assert decided == CONTINUE, (s, t)
        assert isinstance(rule.decide(ctx(rule, trial(0, [got[s]], value=0.1), done)), Prune)


def test_threshold_decides_past_the_warm_up_on_the_interval() -> None:
    rule = create_rule({"rule": "threshold", "lower": 0.5, "n_warmup_steps": 2})
    assert [rule.next_decision_step(trial(0, []), s) for s in range(0, 4)] == [2, 2, 3, 4]
    assert rule.decide(ctx(rule, trial(0, [1], value=0.1))) == CONTINUE
    assert isinstance(rule.decide(ctx(rule, trial(0, [2], value=0.1))), Prune)
    every = create_rule({"rule": "threshold", "upper": 1.0})
    assert every.next_decision_step(trial(0, []), 7) == 8


def test_rules_that_decide_at_every_step_and_the_rule_that_never_does() -> None:
    me = trial(0, [])
    assert create_rule({"rule": "patience", "patience": 2}).next_decision_step(me, 4) == 5
    warm = create_rule({"rule": "patience", "patience": 2, "n_warmup_steps": 10})
    assert warm.next_decision_step(me, 4) == 10
    assert create_rule({"rule": "wilcoxon"}).next_decision_step(me, 4) == 5
    assert create_rule({"rule": "none"}).next_decision_step(me, 4) is None
    assert create_rule(None).next_decision_step(me, 0) is None
