"""The hyperband rule: the paper's brackets, dealt by trial number, each run as ASHA."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tuneforge.core.decisions import CONTINUE, Pause
from tuneforge.core.stopping import StoppingContext, TrialsPeerView, create_rule
from tuneforge.core.stopping.hyperband import HyperbandRule, bracket_schedule, bracket_sizes
from tuneforge.core.trials import Goal, Measurement, Metric, Trial, TrialState

ACC = Metric("acc", Goal.MAXIMIZE)
FIDELITY = {"name": "epochs", "min": 1, "max": 81}  # rungs 1, 3, 9, 27: brackets 0..4
PAUSED, ACTIVE = TrialState.PAUSED, TrialState.ACTIVE


def rule() -> HyperbandRule:
    made = create_rule({"rule": "hyperband", "reduction_factor": 3}, FIDELITY)
    assert isinstance(made, HyperbandRule)
    return made


def numbers_in(bracket: int, count: int) -> list[int]:
    """The first ``count`` trial numbers the rule deals to ``bracket``."""
    hb = rule()
    out = []
    n = 0
    while len(out) < count:
        if hb.bracket_of(Trial(number=n, state=ACTIVE, params={})) == bracket:
            out.append(n)
        n += 1
    return out


def trial(number: int, curve: dict[int, float], state: TrialState = ACTIVE) -> Trial:
    ms = tuple(Measurement(step=s, values={"acc": v}) for s, v in sorted(curve.items()))
    return Trial(number=number, state=state, params={}, measurements=ms)


def decide(me: Trial, others: list[Trial]) -> Any:
    view = TrialsPeerView([*others, me], "acc", me.number, goal=Goal.MAXIMIZE)
    return rule().decide(StoppingContext(trial=me, metric=ACC, peers=view, others=tuple(others)))


def test_bracket_sizes_are_the_papers() -> None:
    # Li et al. 2018, R = 81, eta = 3: n = 81, 34, 15, 8, 5 for s = 4 … 0
    assert bracket_sizes(4, 3) == [81, 34, 15, 8, 5]
    assert bracket_sizes(2, 3) == [9, 5, 3]
    assert bracket_sizes(0, 3) == [1]


def test_the_schedule_deals_each_bracket_its_share_evenly() -> None:
    sizes = tuple(bracket_sizes(4, 3))
    schedule = bracket_schedule(sizes)
    assert Counter(schedule) == dict(enumerate(sizes))
    total = sum(sizes)
    for length in range(1, total + 1):
        counts = Counter(schedule[:length])
        for b, size in enumerate(sizes):
            assert abs(counts[b] - length * size / total) < 1.5  # spread, never bunched
    assert set(schedule[:15]) == {0, 1, 2, 3, 4}  # a short study sees every bracket


def test_a_retry_keeps_the_bracket_of_the_trial_it_repeats() -> None:
    hb = rule()
    for original in range(20):
        retry = Trial(number=500 + original, state=ACTIVE, params={}, retry_of=original)
        first = Trial(number=original, state=ACTIVE, params={})
        assert hb.bracket_of(retry) == hb.bracket_of(first)


def test_a_bracket_is_decided_first_at_its_own_rung() -> None:
    (a, b, c) = numbers_in(1, 3)  # bracket 1: first decided at rung 3
    assert decide(trial(a, {1: 0.1}), []) == CONTINUE  # rung 1 is not its rung
    others = [trial(b, {1: 0.9, 3: 0.9}, PAUSED), trial(c, {1: 0.8, 3: 0.8}, PAUSED)]
    decision = decide(trial(a, {1: 0.1, 3: 0.5}), others)
    assert isinstance(decision, Pause) and decision.reason.startswith("hyperband bracket 1:")


def test_the_last_bracket_trains_every_trial_fully() -> None:
    (n,) = numbers_in(4, 1)
    curve = {step: 0.0 for step in (1, 3, 9, 27, 80)}
    others = [trial(m, {s: 0.9 for s in curve}, PAUSED) for m in numbers_in(4, 5)[1:]]
    for upto in (1, 3, 9, 27, 80):
        partial = {s: v for s, v in curve.items() if s <= upto}
        assert decide(trial(n, partial), others) == CONTINUE


def test_trials_are_ranked_and_promoted_within_their_bracket() -> None:
    zero = numbers_in(0, 3)
    one = numbers_in(1, 3)
    trials = [trial(n, {1: 0.1 + 0.01 * i}, PAUSED) for i, n in enumerate(zero)]
    trials += [trial(n, {1: 0.9, 3: 0.9}, ACTIVE) for n in one]  # better, other bracket
    (promotion,) = rule().promotions(trials, ACC)
    assert promotion.number == zero[2]  # the best of bracket 0, though bracket 1 is better
    assert promotion.reason is not None and promotion.reason.startswith("hyperband bracket 0")
    newcomer = zero[0] + 143  # the schedule repeats every 143 numbers: bracket 0 again
    assert isinstance(decide(trial(newcomer, {1: 0.05}), trials), Pause)
