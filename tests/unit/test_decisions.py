"""The engine's one vocabulary of decisions, and how algorithms and rules speak it."""

from __future__ import annotations

import dataclasses

import pytest

from tuneforge.core.algorithms import Suggestion
from tuneforge.core.decisions import (
    CONTINUE,
    Continue,
    NewParams,
    Pause,
    Prune,
    ResumeTrial,
    WorkerAction,
)


def test_decisions_are_frozen_values() -> None:
    assert Continue() == CONTINUE
    assert Pause("rung 1") == Pause("rung 1") != Prune("rung 1")
    assert ResumeTrial(4, 9) == ResumeTrial(number=4, from_step=9)
    for decision in (CONTINUE, Pause("x"), Prune("x"), ResumeTrial(1, 2), NewParams({"a": 1})):
        field = dataclasses.fields(decision)[0].name if dataclasses.fields(decision) else "x"
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(decision, field, None)


def test_which_decisions_stop_the_worker() -> None:
    assert not CONTINUE.should_stop
    assert Pause("may be promoted").should_stop
    assert Prune("final").should_stop
    assert not WorkerAction("exploit").should_stop


def test_a_worker_action_goes_on_the_wire_as_one_object() -> None:
    action = WorkerAction("exploit", {"from_trial": 3, "params": {"lr": 0.1}}, reason="bottom 20%")
    assert action.to_wire() == {"type": "exploit", "from_trial": 3, "params": {"lr": 0.1}}


def test_a_suggestion_is_a_list_of_decisions() -> None:
    out = Suggestion.of([{"a": 1}, {"a": 2}], {"draws": 2})
    assert out.decisions == (NewParams({"a": 1}), NewParams({"a": 2}))
    assert out.params == ({"a": 1}, {"a": 2}) and out.resumes == ()
    mixed = Suggestion((ResumeTrial(7, 3), NewParams({"a": 5})))
    assert mixed.params == ({"a": 5},) and mixed.resumes == (ResumeTrial(7, 3),)
    assert not mixed.exhausted and mixed.state is None
