"""PBT in the managed sklearn objective: a checkpoint before every report, and on an exploit
the donor's per-fold models with the new params set, trained on from there."""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle
import numpy as np
import pytest

from tests.worker.test_rungs import POLICY, FakeTrial, Store, checkpoint, study, weights
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.study import parse_study_spec
from tuneforge.worker.objective import evaluate, rung_plan
from tuneforge.worker.objectives.rungs import final_step

PBT = {"rule": "pbt", "population": 4, "interval": 2}
SGD = "sklearn.linear_model.SGDClassifier"
EPOCHS = {"name": "max_iter", "min": 1, "max": 6}


class ExploitingTrial(FakeTrial):
    """A handle whose report at ``exploit_at`` brings an exploit of ``donor``'s checkpoint
    (as the SDK applies it: new params, load_checkpoint() reads the donor's)."""

    def __init__(
        self,
        params: dict[str, Any],
        store: Store,
        donor: Store,
        exploit_at: int,
        new_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(params, store)
        self.donor, self.exploit_at = donor, exploit_at
        self.new_params = new_params or {"alpha": 0.5}
        self.action: dict[str, Any] | None = None
        self.saved_before_report: list[bool] = []

    def report(self, step: int, values: Any = None, /, *, elapsed_seconds: Any = None) -> bool:
        self.saved_before_report.append(self.store.saves[-1:] == [step])
        stop = super().report(step, values, elapsed_seconds=elapsed_seconds)
        self.action = None
        if step == self.exploit_at:
            self.params = dict(self.new_params)
            self.action = {"type": "exploit", "from_trial": 7, "params": self.params}
        return stop

    def load_checkpoint(self, default: Any = None) -> Any:
        if self.action is not None:
            assert self.donor.data is not None
            return pickle.loads(self.donor.data)
        return super().load_checkpoint(default)


def _donor(objective: dict[str, Any], context: Any) -> Store:
    donor = Store()
    evaluate(FakeTrial({"alpha": 1e-4}, donor), objective, "accuracy", POLICY, context)
    data = checkpoint(donor)
    data["resource"] = 4  # as if the donor had just reported step 4
    donor.data = cloudpickle.dumps(data)
    return donor


def test_an_exploit_trains_on_from_the_donors_models_with_the_new_params() -> None:
    objective, context = study(SGD, EPOCHS, {"alpha": 1e-4}, fixed={"random_state": 0})
    context = type(context)(context.fidelity, PBT, context.parameter_names, "test-worker")
    plan = rung_plan(objective, context, POLICY)
    assert plan is not None and plan.steps == (1, 2, 4, 6) and plan.checkpoints
    donor = _donor(objective, context)
    donor_models = checkpoint(donor)["models"]
    trial = ExploitingTrial({"alpha": 1e-4}, Store(), donor, exploit_at=2)
    evaluate(trial, objective, "accuracy", POLICY, context)
    assert all(trial.saved_before_report)  # donors are current when exploited
    assert trial.steps == [1, 2, 4, 6]  # its own epochs go on counting
    assert trial.store.saves == [1, 2, 2, 4, 6]  # the donor's models saved as its own at 2
    final = checkpoint(trial.store)
    assert all(final_step(m).alpha == 0.5 for m in final["models"])
    for before, after in zip(donor_models, final["models"], strict=True):
        assert not np.array_equal(weights(before), weights(after))  # trained on from them
    exploit = next(s for s in final["segments"] if "exploit" in s)
    assert exploit == {"exploit": 7, "step": 2, "params": {"alpha": 0.5}}


def test_managed_pbt_needs_a_fidelity_that_grows_the_model() -> None:
    base = {
        "name": "pbt",
        "parameters": [{"name": "alpha", "type": "float", "low": 1e-5, "high": 1.0}],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "early_stopping": PBT,
        "objective": {
            "kind": "sklearn",
            "estimator": SGD,
            "dataset": {"source": "sklearn", "name": "iris"},
            "cv": {"type": "stratified_kfold", "n_splits": 3},
        },
    }
    with pytest.raises(InvalidSpec) as info:
        parse_study_spec(base)
    assert info.value.field == "fidelity"
    with pytest.raises(InvalidSpec) as info:
        parse_study_spec({**base, "fidelity": {"name": "folds", "min": 1, "max": 3}})
    assert info.value.field == "fidelity.name"
    python = {"kind": "python", "callable": "tests.e2e.objectives:quadratic"}
    with pytest.raises(InvalidSpec) as info:
        parse_study_spec({**base, "objective": python})
    assert info.value.field == "early_stopping.rule"


def test_a_forest_exploit_goes_on_from_the_donors_size() -> None:
    forest = "sklearn.ensemble.RandomForestClassifier"
    fidelity = {"name": "n_estimators", "min": 2, "max": 12}
    objective, context = study(forest, fidelity, {"max_depth": 2}, fixed={"random_state": 0})
    context = type(context)(context.fidelity, PBT, context.parameter_names, "test-worker")
    assert rung_plan(objective, context, POLICY).steps == (2, 4, 6, 8, 10, 12)  # type: ignore[union-attr]
    donor = Store()
    evaluate(FakeTrial({"max_depth": 2}, donor), objective, "accuracy", POLICY, context)
    data = checkpoint(donor)
    data["resource"] = 6
    for model in data["models"]:
        final_step(model).set_params(n_estimators=6)
        model.estimators_ = model.estimators_[:6]
    donor.data = cloudpickle.dumps(data)
    trial = ExploitingTrial({"max_depth": 2}, Store(), donor, 2, new_params={"max_depth": 3})
    evaluate(trial, objective, "accuracy", POLICY, context)
    assert trial.steps == [2, 8, 10, 12]  # a forest cannot lose trees: on from the donor's 6
    final = checkpoint(trial.store)
    assert [len(m.estimators_) for m in final["models"]] == [12, 12, 12]
    for model in final["models"]:  # the donor's 6 trees, then 6 grown with the new depth
        depths = [tree.get_depth() for tree in final_step(model).estimators_]
        assert max(depths[:6]) <= 2 and max(depths[6:]) == 3
