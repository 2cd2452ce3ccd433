"""The pbt rule: who exploits whom at each interval, explore within bounds, determinism."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from tuneforge.core.decisions import CONTINUE, WorkerAction
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.space import SearchSpace
from tuneforge.core.stopping import (
    StoppingContext,
    TrialsPeerView,
    create_rule,
    validate_early_stopping,
)
from tuneforge.core.stopping.pbt import PBTRule, explore
from tuneforge.core.trials import Goal, Measurement, Metric, Trial, TrialState

ACC = Metric("acc", Goal.MAXIMIZE)
LOSS = Metric("loss", Goal.MINIMIZE)
SPACE = SearchSpace.from_list(
    [
        {"name": "lr", "type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
        {"name": "depth", "type": "int", "low": 1, "high": 12},
        {"name": "batch", "type": "discrete", "values": [16, 32, 64, 128]},
        {"name": "opt", "type": "categorical", "values": ["adam", "sgd"]},
        {
            "name": "momentum",
            "type": "float",
            "low": 0.0,
            "high": 0.99,
            "condition": {"parent": "opt", "values": ["sgd"]},
        },
    ]
)
PARAMS = {"lr": 0.01, "depth": 6, "batch": 32, "opt": "sgd", "momentum": 0.5}


def trial(number: int, curve: dict[int, float], state: TrialState = TrialState.ACTIVE) -> Trial:
    ms = tuple(Measurement(step=s, values={"acc": v}) for s, v in sorted(curve.items()))
    params = {**PARAMS, "depth": number % 12 + 1}
    return Trial(number=number, state=state, params=params, measurements=ms)


def rule(**options: Any) -> PBTRule:
    made = create_rule(validate_early_stopping({"rule": "pbt", **options}, None))
    assert isinstance(made, PBTRule)
    return made


def decide(me: Trial, others: Sequence[Trial], **options: Any) -> Any:
    view = TrialsPeerView([*others, me], "acc", me.number, goal=Goal.MAXIMIZE)
    ctx = StoppingContext(trial=me, metric=ACC, peers=view, others=tuple(others), space=SPACE)
    return rule(**options).decide(ctx)


def population(n: int, step: int) -> list[Trial]:
    """Trials 1..n whose value at ``step`` is their number / 10 (higher is better)."""
    return [trial(i, {s: i / 10 for s in range(1, step + 1)}) for i in range(1, n + 1)]


def test_options_are_typed_with_defaults() -> None:
    assert validate_early_stopping({"rule": "pbt"}, None) == {
        "rule": "pbt",
        "population": 8,
        "interval": 4,
        "quantile": 0.25,
        "perturb": 0.2,
        "resample_probability": 0.25,
        "seed": 0,
    }
    for key, bad in [
        ("population", 1),
        ("interval", 0),
        ("quantile", 0.75),
        ("perturb", 0.0),
        ("resample_probability", 1.5),
        ("population", 2.5),
    ]:
        with pytest.raises(InvalidSpec) as info:
            validate_early_stopping({"rule": "pbt", key: bad}, None)
        assert info.value.field == f"early_stopping.{key}"


def test_the_bottom_quantile_exploits_a_top_member_at_each_interval() -> None:
    others = population(7, 4)
    worst = trial(0, {s: 0.0 for s in range(1, 5)})
    decision = decide(worst, others)
    assert isinstance(decision, WorkerAction) and decision.kind == "exploit"
    wire = decision.to_wire()
    assert wire["type"] == "exploit" and wire["step"] == 4
    assert wire["from_trial"] in (7, 6)  # the top 2 of 8
    SPACE.validate_params(wire["params"])
    assert "ranks 8 of 8" in (decision.reason or "")
    # between boundaries, and inside the top, it continues
    assert decide(trial(0, {s: 0.0 for s in range(1, 4)}), others) == CONTINUE
    assert decide(trial(9, {s: 0.95 for s in range(1, 5)}), others) == CONTINUE
    # second from the bottom of 8 also exploits; third does not
    assert isinstance(decide(trial(0, {s: 0.15 for s in range(1, 5)}), others), WorkerAction)
    assert decide(trial(0, {s: 0.25 for s in range(1, 5)}), others) == CONTINUE


def test_no_exploit_of_a_donor_that_only_ties() -> None:
    others = [trial(i, {4: 0.5}) for i in range(1, 4)]
    assert decide(trial(0, {4: 0.5}), others, quantile=0.5) == CONTINUE


def test_too_few_members_at_the_boundary_means_no_exploit() -> None:
    others = [*population(2, 4), trial(5, {2: 0.9})]  # trial 5 is an interval behind
    assert decide(trial(0, {s: 0.0 for s in range(1, 5)}), others, interval=2) == CONTINUE
    # a member inside the interval before the boundary ranks by its newest value
    close = [*population(2, 4), trial(5, {3: 0.9})]
    decision = decide(trial(0, {s: 0.0 for s in range(1, 5)}), close, interval=2)
    assert isinstance(decision, WorkerAction) and decision.details["from_trial"] == 5


def test_members_rank_by_their_value_at_the_boundary_and_minimize_works() -> None:
    # a finished member that went far is compared at the boundary, not at its end
    finished = trial(3, {4: 0.01, 16: 0.99}, TrialState.COMPLETED)
    others = [finished, trial(1, {4: 0.5}), trial(2, {4: 0.6})]
    decision = decide(trial(0, {4: 0.3}), others, quantile=0.5)
    assert isinstance(decision, WorkerAction)
    assert decision.details["from_trial"] in (1, 2)
    assert decide(trial(0, {4: 0.7}), others, quantile=0.5) == CONTINUE
    failed = trial(4, {4: 0.99}, TrialState.FAILED)
    assert decide(trial(0, {4: 0.3}), [*others, failed], quantile=0.5).details["from_trial"] != 4


def test_a_measurement_that_jumps_over_a_boundary_is_decided_there() -> None:
    others = population(7, 8)
    jumped = trial(0, {3: 0.0, 6: 0.0})
    decision = decide(jumped, others)
    assert isinstance(decision, WorkerAction) and decision.details["step"] == 6
    assert "at step 4" in (decision.reason or "")


def test_no_exploit_at_the_fidelitys_last_step() -> None:
    others = population(7, 8)
    made = create_rule(
        validate_early_stopping({"rule": "pbt"}, {"name": "epochs", "min": 1, "max": 8}),
        {"name": "epochs", "min": 1, "max": 8},
    )
    me = trial(0, {s: 0.0 for s in range(1, 9)})
    view = TrialsPeerView([*others, me], "acc", 0, goal=Goal.MAXIMIZE)
    ctx = StoppingContext(trial=me, metric=ACC, peers=view, others=tuple(others), space=SPACE)
    assert made.decide(ctx) == CONTINUE


def test_same_history_and_seed_give_the_same_action_and_seeds_differ() -> None:
    others = population(15, 4)
    worst = trial(0, {s: 0.0 for s in range(1, 5)})
    first, again = decide(worst, others), decide(worst, others)
    assert first == again
    actions = {repr(decide(worst, others, seed=seed).to_wire()) for seed in range(6)}
    assert len(actions) > 1


def test_explore_stays_in_bounds_moves_by_perturb_and_respects_conditions() -> None:
    rng = np.random.default_rng(0)
    moves = []
    for _ in range(300):
        new = explore(SPACE, PARAMS, rng, perturb=0.2, resample=0.0)
        SPACE.validate_params(new)
        assert new["opt"] == "sgd"  # categoricals keep the donor's value without resampling
        moves.append(abs(math.log(new["lr"]) - math.log(PARAMS["lr"])) / math.log(1e4))
        assert new["batch"] in (16, 64)  # one value up or down
    assert max(moves) == pytest.approx(0.2, abs=1e-9)
    seen = set()
    for _ in range(300):
        new = explore(SPACE, PARAMS, rng, perturb=0.2, resample=1.0)
        SPACE.validate_params(new)
        seen.add(new["opt"])
        assert ("momentum" in new) == (new["opt"] == "sgd")
    assert seen == {"adam", "sgd"}
    adam = {"lr": 0.01, "depth": 6, "batch": 32, "opt": "adam"}
    assert all(
        ("momentum" in p) == (p["opt"] == "sgd")
        for p in (explore(SPACE, adam, rng, perturb=0.2, resample=0.5) for _ in range(100))
    )


def test_population_bounds_members_and_workers_keep_checkpoints() -> None:
    made = rule(population=5)
    assert made.member_limit() == 5 and made.checkpoints and made.exploits
    assert create_rule({"rule": "median"}).member_limit() is None
    assert not create_rule({"rule": "median"}).checkpoints
