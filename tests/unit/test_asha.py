"""The asha rule: rungs, pause instead of prune, promotion of paused trials."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tuneforge.core.decisions import CONTINUE, Pause
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.stopping import (
    StoppingContext,
    TrialsPeerView,
    create_rule,
    validate_early_stopping,
)
from tuneforge.core.stopping.asha import ASHARule, rungs_of, value_at_rung
from tuneforge.core.trials import Goal, Measurement, Metric, Trial, TrialState

ACC = Metric("acc", Goal.MAXIMIZE)
LOSS = Metric("loss", Goal.MINIMIZE)
FIDELITY = {"name": "epochs", "min": 1, "max": 27}
PAUSED, ACTIVE, DONE = TrialState.PAUSED, TrialState.ACTIVE, TrialState.COMPLETED


def trial(
    number: int, curve: dict[int, float], state: TrialState = ACTIVE, name: str = "acc"
) -> Trial:
    ms = tuple(Measurement(step=s, values={name: v}) for s, v in sorted(curve.items()))
    return Trial(number=number, state=state, params={"n": number}, measurements=ms)


def rule(**options: Any) -> ASHARule:
    made = create_rule({"rule": "asha", **options}, FIDELITY)
    assert isinstance(made, ASHARule)
    return made


def decide(me: Trial, others: Sequence[Trial], metric: Metric = ACC, **options: Any) -> Any:
    view = TrialsPeerView([*others, me], metric.name, me.number, goal=metric.goal)
    ctx = StoppingContext(trial=me, metric=metric, peers=view, others=tuple(others))
    return rule(**options).decide(ctx)


def test_rungs_grow_by_the_reduction_factor_below_max() -> None:
    assert rungs_of({"min": 1, "max": 81}, 3) == [1, 3, 9, 27]
    assert rungs_of({"min": 1, "max": 100}, 3) == [1, 3, 9, 27, 81]
    assert rungs_of({"min": 2, "max": 20}, 2) == [2, 4, 8, 16]
    assert rungs_of({"min": 5, "max": 6}, 4) == [5]


def test_value_at_rung_is_the_first_step_at_or_past_it() -> None:
    series = [(1, 0.1), (2, 0.2), (4, 0.4)]
    assert value_at_rung(series, 3) == 0.4 and value_at_rung(series, 1) == 0.1
    assert value_at_rung(series, 5) is None


def test_options_and_fidelity_are_checked() -> None:
    assert validate_early_stopping({"rule": "asha"}, FIDELITY) == {
        "rule": "asha",
        "reduction_factor": 3,
        "keep_leader": False,
    }
    with pytest.raises(InvalidSpec) as info:
        validate_early_stopping({"rule": "asha"}, None)
    assert info.value.field == "fidelity"
    with pytest.raises(InvalidSpec) as info:
        validate_early_stopping({"rule": "asha"}, {"name": "e", "min": 0, "max": 9})
    assert info.value.field == "fidelity.min"
    for bad in (1, 2.0, True, 101):
        with pytest.raises(InvalidSpec) as info:
            validate_early_stopping({"rule": "asha", "reduction_factor": bad}, FIDELITY)
        assert info.value.field == "early_stopping.reduction_factor"


def test_between_rungs_the_trial_goes_on() -> None:
    me = trial(9, {1: 0.1, 2: 0.1})  # crossed rung 1 at step 1, step 2 is no rung
    assert decide(me, []) == CONTINUE


def test_the_first_trials_at_a_rung_are_paused_not_pruned() -> None:
    decision = decide(trial(0, {1: 0.9}), [])
    assert isinstance(decision, Pause) and decision.should_stop
    assert "rung 1" in decision.reason and "ranks 1 of 1" in decision.reason
    decision = decide(trial(1, {1: 0.9}), [trial(0, {1: 0.5}, PAUSED)])
    assert isinstance(decision, Pause)  # 2 // 3 = 0 go on


def test_the_top_third_goes_on_the_rest_pause() -> None:
    others = [trial(0, {1: 0.5}, PAUSED), trial(1, {1: 0.6}, PAUSED)]
    assert decide(trial(2, {1: 0.7}), others) == CONTINUE  # best of 3: top 1 goes on
    assert isinstance(decide(trial(2, {1: 0.55}), others), Pause)
    # for a loss the lowest value is best
    losses = [trial(0, {1: 0.5}, PAUSED, "loss"), trial(1, {1: 0.6}, PAUSED, "loss")]
    assert decide(trial(2, {1: 0.4}, name="loss"), losses, LOSS) == CONTINUE
    assert isinstance(decide(trial(2, {1: 0.7}, name="loss"), losses, LOSS), Pause)


def test_keep_leader_lets_the_best_of_an_underfilled_rung_go_on() -> None:
    first = trial(0, {1: 0.5})
    assert decide(first, [], keep_leader=True) == CONTINUE  # 1 of 1: the leader goes on
    others = [trial(0, {1: 0.5}, ACTIVE)]
    assert decide(trial(1, {1: 0.6}), others, keep_leader=True) == CONTINUE  # new leader
    assert isinstance(decide(trial(1, {1: 0.4}), others, keep_leader=True), Pause)
    # once the rung holds reduction_factor trials the paper's top n // eta applies again
    three = [trial(0, {1: 0.5}, PAUSED), trial(1, {1: 0.6}, ACTIVE), trial(2, {1: 0.3}, PAUSED)]
    assert isinstance(decide(trial(3, {1: 0.55}), three, keep_leader=True), Pause)
    assert decide(trial(3, {1: 0.65}), three, keep_leader=True) == CONTINUE  # 4 // 3 = 1
    # a paused trial that leads a rung of fewer than eta is promoted with keep_leader only
    paused = [trial(0, {1: 0.5}, PAUSED), trial(1, {1: 0.1}, DONE)]
    assert rule().promotions(paused, ACC) == ()
    assert [p.number for p in rule(keep_leader=True).promotions(paused, ACC)] == [0]
    with pytest.raises(InvalidSpec) as info:
        validate_early_stopping({"rule": "asha", "keep_leader": "yes"}, FIDELITY)
    assert info.value.field == "early_stopping.keep_leader"


def test_a_larger_reduction_factor_keeps_fewer() -> None:
    others = [trial(i, {1: 0.1 * i}, PAUSED) for i in range(3)]
    assert decide(trial(3, {1: 0.9}), others, reduction_factor=2) == CONTINUE  # 4 // 2 = 2
    assert isinstance(decide(trial(3, {1: 0.9}), others, reduction_factor=5), Pause)


def test_a_jump_over_several_rungs_is_ranked_at_the_highest() -> None:
    others = [trial(i, {1: 0.1, 9: 0.2 + i / 10}, DONE) for i in range(3)]
    me = trial(5, {1: 0.1, 10: 0.9})  # from step 1 straight to 10: rungs 3 and 9 crossed
    assert decide(me, others) == CONTINUE  # best at rung 9 (its value at step 10)
    assert isinstance(decide(trial(5, {1: 0.1, 10: 0.15}), others), Pause)


def test_paused_trials_entering_the_top_are_promoted_best_first() -> None:
    trials = [
        trial(0, {1: 0.5}, PAUSED),
        trial(1, {1: 0.9}, PAUSED),
        trial(2, {1: 0.7}, PAUSED),
    ]
    (promotion,) = rule().promotions(trials, ACC)
    assert promotion.number == 1 and promotion.from_step == 1
    assert promotion.reason is not None and "promoted from rung 1" in promotion.reason
    six = [*trials, *(trial(n, {1: 0.1}, PAUSED) for n in range(3, 6))]
    assert [p.number for p in rule().promotions(six, ACC)] == [1, 2]


def test_a_trial_already_gone_on_takes_its_place_in_the_top() -> None:
    trials = [
        trial(0, {1: 0.5}, PAUSED),
        trial(1, {1: 0.9, 2: 0.9}, ACTIVE),  # went on at arrival
        trial(2, {1: 0.7}, PAUSED),
    ]
    assert rule().promotions(trials, ACC) == ()


def test_higher_rungs_promote_first_and_each_trial_at_its_own_rung() -> None:
    low = [trial(n, {1: 0.1 * n}, PAUSED) for n in range(9)]  # 8 is the best of these
    high = [
        trial(10, {1: 0.9, 3: 0.95}, PAUSED),  # paused at rung 3, the best there
        trial(11, {1: 0.9, 3: 0.5}, PAUSED),
        trial(12, {1: 0.9, 3: 0.4}, DONE),
    ]
    # rung 3: 3 // 3 = 1 -> 10; rung 1: 12 // 3 = 4 -> 10, 11, 12 (gone on) and 8
    promotions = rule().promotions([*low, *high], ACC)
    assert [(p.number, p.from_step) for p in promotions] == [(10, 3), (8, 1)]


def test_failed_trials_do_not_count() -> None:
    failed = [trial(n, {1: 0.99}, TrialState.FAILED) for n in range(5)]
    assert isinstance(decide(trial(9, {1: 0.5}), failed), Pause)


def test_at_the_end_the_best_paused_trial_of_the_highest_rung_trains_fully() -> None:
    trials = [
        trial(0, {1: 0.5}, PAUSED),
        trial(1, {1: 0.9, 3: 0.6}, PAUSED),
        trial(2, {1: 0.8, 3: 0.7}, PAUSED),
        trial(3, {1: 0.3}, PAUSED),
    ]
    assert rule().promotions(trials, ACC) == ()  # rung 1: 4 // 3 = 1 and 1 went on; rung 3: 0
    (last,) = rule().promotions(trials, ACC, final=True)
    assert (last.number, last.from_step) == (2, 3)
    finished = [*trials, trial(4, {1: 0.95, 27: 0.99}, DONE)]  # someone trained fully
    assert rule().promotions(finished, ACC, final=True) == ()


def test_the_other_trials_are_needed_only_at_a_rung() -> None:
    asha = rule()
    assert asha.needs_others(trial(0, {1: 0.5}), ACC)  # crossed rung 1
    assert not asha.needs_others(trial(0, {1: 0.5, 2: 0.6}), ACC)  # between rungs
    assert asha.needs_others(trial(0, {1: 0.5, 2: 0.6, 3: 0.7}), ACC)
    assert not create_rule({"rule": "median"}).needs_others(trial(0, {1: 0.5}), ACC)
    assert create_rule({"rule": "wilcoxon"}).needs_others(trial(0, {1: 0.5}), ACC)
