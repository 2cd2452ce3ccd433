"""Both state machines, pair by pair: every allowed move passes, every other one is a conflict.

The allowed pairs are written out here on purpose (not read from the tables), so
a change of either table must show up as a change of this test.
"""

from __future__ import annotations

import itertools

import pytest

from tuneforge.core.errors import Conflict
from tuneforge.core.trials import (
    StudyState,
    TrialState,
    check_study_transition,
    check_transition,
)

T = TrialState
TRIAL_ALLOWED = {
    (T.REQUESTED, T.ACTIVE),
    (T.REQUESTED, T.COMPLETED),  # a trial added with its values
    (T.REQUESTED, T.INFEASIBLE),
    (T.REQUESTED, T.FAILED),
    (T.ACTIVE, T.STOPPING),
    (T.ACTIVE, T.PAUSED),
    (T.ACTIVE, T.COMPLETED),
    (T.ACTIVE, T.PRUNED),
    (T.ACTIVE, T.INFEASIBLE),
    (T.ACTIVE, T.FAILED),
    (T.STOPPING, T.PAUSED),
    (T.STOPPING, T.COMPLETED),
    (T.STOPPING, T.PRUNED),
    (T.STOPPING, T.INFEASIBLE),
    (T.STOPPING, T.FAILED),
    (T.PAUSED, T.ACTIVE),  # promoted: resumed from a step
    (T.PAUSED, T.PRUNED),  # never promoted before the study ended
    (T.PAUSED, T.FAILED),
}
S = StudyState
STUDY_ALLOWED = {
    (S.ACTIVE, S.PAUSED),
    (S.ACTIVE, S.COMPLETED),
    (S.PAUSED, S.ACTIVE),
    (S.PAUSED, S.COMPLETED),
    (S.COMPLETED, S.ACTIVE),
}


@pytest.mark.parametrize(
    ("current", "target"), list(itertools.product(TrialState, TrialState)), ids=str
)
def test_every_trial_pair(current: TrialState, target: TrialState) -> None:
    if (current, target) in TRIAL_ALLOWED:
        check_transition(current, target, 3)
        return
    with pytest.raises(Conflict) as info:
        check_transition(current, target, 3)
    assert "trial 3" in info.value.message and current.value in info.value.message
    assert info.value.details == {"trial_state": current.value}


@pytest.mark.parametrize(
    ("current", "target"), list(itertools.product(StudyState, StudyState)), ids=str
)
def test_every_study_pair(current: StudyState, target: StudyState) -> None:
    if (current, target) in STUDY_ALLOWED:
        check_study_transition(current, target, 5)
        return
    with pytest.raises(Conflict) as info:
        check_study_transition(current, target, 5)
    assert f"study 5 is {current.value} and cannot become {target.value}" in info.value.message
    assert info.value.details == {"study_state": current.value}


def test_finished_trials_never_change() -> None:
    for current in TrialState:
        if current.is_finished:
            assert not any((current, target) in TRIAL_ALLOWED for target in TrialState)
