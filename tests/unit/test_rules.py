"""The percentile, threshold and patience rules, and the ``metric`` option of every rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tuneforge.core.decisions import CONTINUE, Prune
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.stopping import (
    StoppingContext,
    TrialsPeerView,
    create_rule,
    validate_early_stopping,
)
from tuneforge.core.study import parse_study_spec
from tuneforge.core.trials import Goal, Measurement, Metric, Trial, TrialState

ACC = Metric("acc", Goal.MAXIMIZE)
LOSS = Metric("loss", Goal.MINIMIZE)


def make(number: int, curve: Sequence[float], metric: str = "acc", **kw: Any) -> Trial:
    ms = tuple(Measurement(step=i, values={metric: v}) for i, v in enumerate(curve))
    state = kw.get("state", TrialState.ACTIVE)
    return Trial(number=number, state=state, params={}, measurements=ms)


def decide(rule: str, me: Trial, others: Sequence[Trial] = (), metric: Metric = ACC, **opts: Any):  # type: ignore[no-untyped-def]
    spec = validate_early_stopping({"rule": rule, **opts}, None)
    view = TrialsPeerView([*others, me], metric.name, me.number, goal=metric.goal)
    return create_rule(spec).decide(StoppingContext(trial=me, metric=metric, peers=view))


def done(values: Sequence[float], metric: str = "acc") -> list[Trial]:
    """One completed peer per value, each with that value at steps 0 and 1."""
    return [make(i, [v, v], metric, state=TrialState.COMPLETED) for i, v in enumerate(values)]


# ---- percentile -------------------------------------------------------------------------
PEERS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def test_percentile_keeps_only_the_best_share() -> None:
    # maximize: keep the best 25% -> cut-off is the peers' 75th percentile (0.7)
    assert isinstance(decide("percentile", make(99, [0.65, 0.65]), done(PEERS)), Prune)
    assert decide("percentile", make(99, [0.75, 0.75]), done(PEERS)) == CONTINUE
    # minimize: the 25th percentile (0.3) is the cut-off
    losses = done(PEERS, "loss")
    assert decide("percentile", make(99, [0.25, 0.25], "loss"), losses, LOSS) == CONTINUE
    assert isinstance(decide("percentile", make(99, [0.35, 0.35], "loss"), losses, LOSS), Prune)


def test_percentile_50_is_the_median_rule() -> None:
    for value in (0.45, 0.5, 0.55):
        me = make(99, [value, value])
        half = decide("percentile", me, done(PEERS), percentile=50)
        median = decide("median", me, done(PEERS))
        assert type(half) is type(median)
    reason = decide("percentile", make(99, [0.2, 0.2]), done(PEERS)).reason
    assert reason.startswith("percentile rule: at step 1") and "best-25% cut-off 0.7" in reason


@pytest.mark.parametrize("bad", [0, 100, -5, "25", True])
def test_percentile_must_be_strictly_between_0_and_100(bad: Any) -> None:
    with pytest.raises(InvalidSpec) as info:
        validate_early_stopping({"rule": "percentile", "percentile": bad}, None)
    assert info.value.field == "early_stopping.percentile"


# ---- threshold --------------------------------------------------------------------------
def test_threshold_stops_outside_the_bounds() -> None:
    assert decide("threshold", make(0, [0.5, 0.2]), lower=0.3).reason == (
        "threshold rule: at step 1 acc 0.2 is below 0.3"
    )
    assert decide("threshold", make(0, [0.5, 0.4]), lower=0.3) == CONTINUE
    loss = make(0, [1.0, 12.0], "loss")
    assert "above 10" in decide("threshold", loss, metric=LOSS, upper=10).reason
    assert decide("threshold", make(0, [0.2]), lower=0.3, n_warmup_steps=1) == CONTINUE


def test_threshold_stops_a_diverged_run() -> None:
    for value in (float("nan"), float("inf")):
        decision = decide("threshold", make(0, [1.0, value], "loss"), metric=LOSS, upper=1e9)
        assert isinstance(decision, Prune) and "diverged" in decision.reason


def test_threshold_checks_only_on_its_interval() -> None:
    curve = [0.0] * 4  # below the bound at every step
    for step in range(4):
        trial = make(0, curve[: step + 1])
        stopped = isinstance(decide("threshold", trial, lower=0.5, interval_steps=2), Prune)
        assert stopped == (step % 2 == 0)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({}, "early_stopping.lower"),
        ({"lower": 1.0, "upper": 0.5}, "early_stopping.upper"),
        ({"lower": "low"}, "early_stopping.lower"),
        ({"upper": float("nan")}, "early_stopping.upper"),
    ],
)
def test_threshold_options(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        validate_early_stopping({"rule": "threshold", **options}, None)
    assert info.value.field == field


# ---- patience ---------------------------------------------------------------------------
def test_patience_stops_a_flat_curve() -> None:
    assert decide("patience", make(0, [0.5, 0.6, 0.6, 0.6])) == CONTINUE  # 3 after the first
    decision = decide("patience", make(0, [0.5, 0.6, 0.6, 0.6, 0.59]))
    assert isinstance(decision, Prune)
    assert decision.reason == (
        "patience rule: acc did not improve on 0.6 by more than 0 in the last 3 measurements "
        "(to step 4)"
    )
    assert decide("patience", make(0, [0.5, 0.6, 0.6, 0.6, 0.61])) == CONTINUE


def test_patience_for_a_loss_and_with_min_delta() -> None:
    falling = make(0, [1.0, 0.9, 0.8, 0.7], "loss")
    assert decide("patience", falling, metric=LOSS, patience=2) == CONTINUE
    assert isinstance(decide("patience", falling, metric=LOSS, patience=2, min_delta=0.5), Prune)
    assert decide("patience", make(0, [0.5, 0.5]), patience=1, n_warmup_steps=2) == CONTINUE


def test_patience_needs_no_peers() -> None:
    assert isinstance(decide("patience", make(0, [0.5, 0.4, 0.3, 0.2]), []), Prune)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"patience": 0}, "early_stopping.patience"), ({"min_delta": -1}, "early_stopping.min_delta")],
)
def test_patience_options(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        validate_early_stopping({"rule": "patience", **options}, None)
    assert info.value.field == field


# ---- the watched metric -------------------------------------------------------------------
def test_a_rule_watches_the_objective_its_metric_option_names() -> None:
    objectives = (ACC, LOSS)
    assert create_rule({"rule": "median"}).watched(objectives) == ACC  # the first by default
    assert create_rule({"rule": "patience", "metric": "loss"}).watched(objectives) == LOSS
    # only given options are stored: specs of studies made before the option stay the same
    assert "metric" not in validate_early_stopping({"rule": "median"}, None)
    assert validate_early_stopping({"rule": "median", "metric": "loss"}, None)["metric"] == "loss"


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("speed", "must name an objective of the study (objectives: ['acc', 'loss'])"),
        ("mem", "must name an objective of the study"),  # tracked, not an objective
        (3, "must be null or a string, got 3"),
    ],
)
def test_the_metric_option_must_name_an_objective(metric: Any, message: str) -> None:
    spec = {
        "name": "s",
        "parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "metrics": [
            {"name": "acc"},
            {"name": "loss", "goal": "minimize"},
            {"name": "mem", "role": "tracked"},
        ],
        "early_stopping": {"rule": "median", "metric": metric},
    }
    with pytest.raises(InvalidSpec) as info:
        parse_study_spec(spec)
    assert info.value.field == "early_stopping.metric" and message in info.value.message
