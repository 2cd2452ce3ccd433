"""Early-stopping rules: the median rule, the peer view, option validation, the registry."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from tuneforge.core.errors import InvalidSpec
from tuneforge.core.stopping import (
    CONTINUE,
    PeerView,
    Prune,
    StoppingContext,
    StoppingRule,
    TrialDecision,
    TrialsPeerView,
    create_rule,
    get_rule,
    rule_names,
    validate_early_stopping,
)
from tuneforge.core.trials import Goal, Measurement, Metric, Trial, TrialState

ACC = Metric("acc", Goal.MAXIMIZE)
LOSS = Metric("loss", Goal.MINIMIZE)


def make_trial(
    number: int,
    curve: Sequence[float],
    *,
    state: TrialState = TrialState.COMPLETED,
    metric: str = "acc",
    start: int = 0,
) -> Trial:
    """A trial that reported ``curve[i]`` at step ``start + i``."""
    measurements = tuple(
        Measurement(step=start + i, values={metric: value}) for i, value in enumerate(curve)
    )
    return Trial(number=number, state=state, params={}, measurements=measurements)


def peers_of(
    n: int, curve: Sequence[float], *, metric: str = "acc", state: TrialState = TrialState.COMPLETED
) -> list[Trial]:
    """``n`` peer trials numbered 0..n-1 with the same curve."""
    return [make_trial(i, curve, metric=metric, state=state) for i in range(n)]


def decide(
    trial: Trial,
    others: Sequence[Trial],
    metric: Metric = ACC,
    options: Mapping[str, Any] | None = None,
) -> TrialDecision:
    """The median rule's decision for ``trial``'s newest measurement."""
    rule = create_rule({"rule": "median", **(options or {})})
    view = TrialsPeerView([*others, trial], metric.name, trial.number, goal=metric.goal)
    return rule.decide(StoppingContext(trial=trial, metric=metric, peers=view))


GOOD = [0.5, 0.6, 0.7, 0.8, 0.9]


# --- decisions -------------------------------------------------------------------------


def test_none_rule_never_stops() -> None:
    rule = create_rule({"rule": "none"})
    bad = make_trial(99, [0.0] * 5, state=TrialState.ACTIVE)
    view = TrialsPeerView([*peers_of(10, GOOD), bad], "acc", 99, goal=Goal.MAXIMIZE)
    assert rule.decide(StoppingContext(trial=bad, metric=ACC, peers=view)) == CONTINUE
    assert create_rule(None).name == "none"


# --- the median rule -------------------------------------------------------------------


def test_median_stops_clearly_bad_trial_after_startup() -> None:
    bad = make_trial(99, [0.1, 0.1], state=TrialState.ACTIVE)
    decision = decide(bad, peers_of(5, GOOD))
    assert isinstance(decision, Prune) and decision.should_stop
    assert "step 1" in decision.reason and "0.1" in decision.reason and "0.6" in decision.reason


def test_median_lets_good_and_tied_trials_continue() -> None:
    assert decide(make_trial(99, [0.9, 0.95], state=TrialState.ACTIVE), peers_of(5, GOOD)) == (
        CONTINUE
    )
    # Equal to the median is not worse than it.
    assert decide(make_trial(99, [0.5, 0.6], state=TrialState.ACTIVE), peers_of(5, GOOD)) == (
        CONTINUE
    )


def test_median_waits_for_startup_trials() -> None:
    bad = make_trial(99, [0.0], state=TrialState.ACTIVE)
    running = peers_of(10, GOOD, state=TrialState.ACTIVE)
    assert decide(bad, running) == CONTINUE  # plenty of peers, none completed
    four_done = [*peers_of(4, GOOD), *running[4:]]
    assert decide(bad, four_done) == CONTINUE
    assert decide(bad, four_done, options={"n_startup_trials": 4}).should_stop


def test_median_needs_min_peers_at_the_step() -> None:
    done = peers_of(5, GOOD[:2])  # completed, but only reached step 1
    late = make_trial(99, [0.0, 0.0, 0.0], state=TrialState.ACTIVE)  # newest step 2
    assert decide(late, done) == CONTINUE
    assert decide(late, done, options={"min_peers": 1}) == CONTINUE  # nobody reached step 2
    early = make_trial(99, [0.0, 0.0], state=TrialState.ACTIVE)
    assert decide(early, done[:2], options={"n_startup_trials": 0}) == CONTINUE  # 2 < 3 peers
    assert decide(early, done[:2], options={"n_startup_trials": 0, "min_peers": 2}).should_stop


def test_median_never_stops_before_warmup() -> None:
    options = {"n_warmup_steps": 3}
    for steps in range(1, 4):  # newest steps 0, 1, 2
        assert decide(make_trial(99, [0.0] * steps), peers_of(5, GOOD), options=options) == (
            CONTINUE
        )
    assert decide(make_trial(99, [0.0] * 4), peers_of(5, GOOD), options=options).should_stop


def test_median_respects_interval() -> None:
    options = {"n_warmup_steps": 1, "interval_steps": 2}
    peers = peers_of(5, [0.5] * 8)
    stopped_at = [
        n - 1
        for n in range(1, 9)
        if decide(make_trial(99, [0.0] * n), peers, options=options).should_stop
    ]
    assert stopped_at == [1, 3, 5, 7]


def test_median_is_goal_aware_for_minimize() -> None:
    peers = peers_of(5, [1.0, 0.8, 0.6], metric="loss")
    high = make_trial(99, [2.0, 1.9], metric="loss", state=TrialState.ACTIVE)
    low = make_trial(99, [0.5, 0.4], metric="loss", state=TrialState.ACTIVE)
    assert decide(high, peers, metric=LOSS).should_stop
    assert decide(low, peers, metric=LOSS) == CONTINUE
    # The same numbers read as accuracy flip the decisions.
    as_acc = [make_trial(t.number, [1.0, 0.8, 0.6]) for t in peers]
    assert decide(make_trial(99, [2.0, 1.9]), as_acc) == CONTINUE
    assert decide(make_trial(99, [0.5, 0.4]), as_acc).should_stop


def test_best_so_far_forgives_a_bad_step() -> None:
    dip = make_trial(99, [0.9, 0.2], state=TrialState.ACTIVE)  # great, then a noisy step
    assert decide(dip, peers_of(5, GOOD)) == CONTINUE
    decision = decide(dip, peers_of(5, GOOD), options={"use_best_so_far": False})
    assert isinstance(decision, Prune) and "0.2" in decision.reason


def test_best_so_far_compares_against_peers_best() -> None:
    # Peers peaked at 0.9 on step 0 and decayed; their best until step 2 is 0.9.
    peers = peers_of(5, [0.9, 0.3, 0.3])
    trial = make_trial(99, [0.1, 0.5, 0.6], state=TrialState.ACTIVE)
    assert decide(trial, peers).should_stop  # best 0.6 < median best 0.9
    assert decide(trial, peers, options={"use_best_so_far": False}) == CONTINUE  # 0.6 > 0.3


def test_median_continues_without_the_watched_metric() -> None:
    other = make_trial(99, [0.0, 0.0], metric="other", state=TrialState.ACTIVE)
    assert decide(other, peers_of(5, GOOD)) == CONTINUE
    empty = Trial(number=99, state=TrialState.ACTIVE, params={})
    assert decide(empty, peers_of(5, GOOD)) == CONTINUE


def test_median_ignores_own_and_failed_trials_as_peers() -> None:
    bad = make_trial(0, [0.0, 0.0], state=TrialState.ACTIVE)
    failed = [make_trial(20 + i, [0.0, 0.0], state=TrialState.FAILED) for i in range(5)]
    good = [make_trial(10 + i, GOOD) for i in range(5)]
    # Failed trials do not drag the median down; they do not count as completed.
    assert decide(bad, [*failed, *good[:3]], options={"n_startup_trials": 3}).should_stop
    assert decide(bad, [*failed, *good[:2]], options={"n_startup_trials": 3}) == CONTINUE


# --- the in-memory peer view -----------------------------------------------------------


def test_trials_peer_view() -> None:
    trials = [
        make_trial(0, [0.1, 0.5, 0.3]),
        make_trial(1, [0.2, 0.4], state=TrialState.PRUNED),
        make_trial(2, [0.9], state=TrialState.ACTIVE),
        make_trial(3, [0.7, 0.7, 0.7], state=TrialState.FAILED),
        make_trial(4, [0.8, 0.8, 0.8, 0.8]),  # excluded: the trial itself
        make_trial(5, [0.6], start=2),  # only step 2
    ]
    view = TrialsPeerView(trials, "acc", 4, goal="maximize")
    assert isinstance(view, PeerView)
    assert sorted(view.values_at(0)) == [0.1, 0.2, 0.9]
    assert sorted(view.values_at(2)) == [0.3, 0.6]
    assert view.values_at(7) == []
    assert sorted(view.best_until(1)) == [0.4, 0.5]  # 2 stopped at 0; 5 has nothing <= 1
    assert sorted(view.best_until(2)) == [0.5, 0.6]
    assert view.n_completed() == 2
    low = TrialsPeerView(trials, "acc", 4, goal=Goal.MINIMIZE)
    assert sorted(low.best_until(1)) == [0.1, 0.2]


# --- validation and registry -----------------------------------------------------------


def test_registry_lists_and_resolves_rules() -> None:
    assert {"none", "median"} <= set(rule_names())
    for name in rule_names():
        cls = get_rule(name)
        assert issubclass(cls, StoppingRule) and cls.name == name


def test_validate_fills_defaults() -> None:
    assert validate_early_stopping(None, None) == {"rule": "none"}
    assert validate_early_stopping({"rule": "none"}, None) == {"rule": "none"}
    full = validate_early_stopping({"rule": "median", "n_warmup_steps": 2}, None)
    assert full == {
        "rule": "median",
        "n_startup_trials": 5,
        "n_warmup_steps": 2,
        "interval_steps": 1,
        "min_peers": 3,
        "use_best_so_far": True,
    }
    assert create_rule(full).options["n_warmup_steps"] == 2


def test_unknown_rule_is_rejected_with_the_choices() -> None:
    with pytest.raises(InvalidSpec) as info:
        validate_early_stopping({"rule": "sometimes"}, None)
    assert info.value.field == "early_stopping.rule"
    assert "median" in info.value.message and "none" in info.value.message


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("median", "early_stopping"),
        ({}, "early_stopping.rule"),
        ({"rule": 3}, "early_stopping.rule"),
        ({"rule": "none", "n_warmup_steps": 1}, "early_stopping.n_warmup_steps"),
        ({"rule": "median", "patience": 1}, "early_stopping.patience"),
        ({"rule": "median", "n_startup_trials": -1}, "early_stopping.n_startup_trials"),
        ({"rule": "median", "n_startup_trials": 2.5}, "early_stopping.n_startup_trials"),
        ({"rule": "median", "n_warmup_steps": True}, "early_stopping.n_warmup_steps"),
        ({"rule": "median", "n_warmup_steps": "3"}, "early_stopping.n_warmup_steps"),
        ({"rule": "median", "interval_steps": 0}, "early_stopping.interval_steps"),
        ({"rule": "median", "min_peers": 0}, "early_stopping.min_peers"),
        ({"rule": "median", "use_best_so_far": 1}, "early_stopping.use_best_so_far"),
    ],
)
def test_bad_options_name_the_field(spec: Any, field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        validate_early_stopping(spec, None)
    assert info.value.field == field


def test_warmup_must_fit_the_fidelity() -> None:
    fidelity = {"name": "epochs", "min": 1, "max": 10}
    spec = {"rule": "median", "n_warmup_steps": 10}
    assert validate_early_stopping(spec, fidelity)["n_warmup_steps"] == 10
    with pytest.raises(InvalidSpec) as info:
        validate_early_stopping({**spec, "n_warmup_steps": 11}, fidelity)
    assert info.value.field == "early_stopping.n_warmup_steps"


def test_core_stays_free_of_service_dependencies() -> None:
    code = (
        "import sys, tuneforge.core.stopping, tuneforge.core.stopping.median, "
        "tuneforge.core.analysis\n"
        "bad = [m for m in ('sqlalchemy', 'fastapi', 'celery', 'tuneforge.api', "
        "'tuneforge.worker') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
