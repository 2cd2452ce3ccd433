"""Rung training of the managed sklearn objective: reports at the plan's steps, obeys
should_stop, checkpoints the per-fold models, and a resumed trial goes on from the
checkpoint (pickled and unpickled, as between two worker processes) instead of retraining."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

import cloudpickle
import numpy as np
import pytest

from tuneforge.core.policy import ObjectivePolicy
from tuneforge.core.study import parse_study_spec
from tuneforge.worker.objective import (
    ConfigurationError,
    StudyContext,
    evaluate,
    problem_for,
    rung_plan,
)
from tuneforge.worker.objectives.rungs import final_step

POLICY = ObjectivePolicy()


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One BLAS / OpenMP thread per trial, as the workers run them (blas_threads 1)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


class Store:
    """The server's side of checkpoints: bytes, as the checkpoint endpoint keeps them."""

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.saves: list[int | None] = []
        self.loads = 0


class FakeTrial:
    """A trial handle with the SDK's reporting and checkpoint methods, answering
    ``should_stop`` at the steps in ``stop_at``."""

    def __init__(
        self,
        params: Mapping[str, Any],
        store: Store,
        stop_at: tuple[int, ...] = (),
        resume_from_step: int | None = None,
    ) -> None:
        self.params = dict(params)
        self.resume_from_step = resume_from_step
        self.store = store
        self.stop_at = stop_at
        self.should_stop = False
        self.reports: list[tuple[int, float, float | None]] = []

    def report(
        self,
        step: int,
        values: Mapping[str, float] | None = None,
        /,
        *,
        elapsed_seconds: float | None = None,
    ) -> bool:
        assert values is not None
        self.reports.append((step, values["accuracy"], elapsed_seconds))
        self.should_stop = self.should_stop or step in self.stop_at
        return self.should_stop

    def save_checkpoint(self, state: Any, *, step: int | None = None) -> None:
        self.store.data = cloudpickle.dumps(state)
        self.store.saves.append(step)

    def load_checkpoint(self, default: Any = None) -> Any:
        self.store.loads += 1
        return default if self.store.data is None else pickle.loads(self.store.data)

    @property
    def steps(self) -> list[int]:
        return [s for s, _, _ in self.reports]


def study(
    estimator: str,
    fidelity: dict[str, Any],
    params: dict[str, Any],
    *,
    rule: str = "asha",
    fixed: dict[str, Any] | None = None,
    dataset: str = "iris",
    **objective: Any,
) -> tuple[dict[str, Any], StudyContext]:
    spec = parse_study_spec(
        {
            "name": "rungs",
            "parameters": [{"name": k, "type": "float", "low": 0, "high": 1e6} for k in params],
            "metrics": [{"name": "accuracy", "goal": "maximize"}],
            "fidelity": fidelity,
            "early_stopping": {"rule": rule},
            "objective": {
                "kind": "sklearn",
                "estimator": estimator,
                "fixed_params": fixed or {},
                "dataset": {"source": "sklearn", "name": dataset},
                "cv": {"type": "stratified_kfold", "n_splits": 3},
                "scoring": "accuracy",
                **objective,
            },
        }
    )
    assert spec.objective is not None
    context = StudyContext(spec.fidelity, spec.early_stopping, tuple(params), "test-worker")
    return dict(spec.objective), context


def checkpoint(store: Store) -> dict[str, Any]:
    assert store.data is not None
    data = pickle.loads(store.data)
    assert isinstance(data, dict)
    return data


def weights(model: Any) -> np.ndarray:
    """What a fitted model learnt, flattened (trees' thresholds, or coefficients)."""
    final = final_step(model)
    if hasattr(final, "estimators_"):
        trees = np.ravel(final.estimators_)
        return np.concatenate([t.tree_.threshold for t in trees])
    if hasattr(final, "coefs_"):
        return np.concatenate([c.ravel() for c in final.coefs_])
    if hasattr(final, "_predictors"):
        return np.concatenate([p.nodes["value"] for ps in final._predictors for p in ps])
    if hasattr(final, "theta_"):
        return np.ravel(final.theta_)
    return np.ravel(final.coef_)


CASES = [
    pytest.param(
        "sklearn.ensemble.RandomForestClassifier",
        {"name": "n_estimators", "min": 4, "max": 36},
        {"min_samples_leaf": 1},
        {"random_state": 0},
        (4, 12, 36),
        id="forest-n_estimators",
    ),
    pytest.param(
        "sklearn.ensemble.GradientBoostingClassifier",
        {"name": "n_estimators", "min": 2, "max": 18},
        {"learning_rate": 0.1},
        {"random_state": 0},
        (2, 6, 18),
        id="boosting-n_estimators",
    ),
    pytest.param(
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"name": "max_iter", "min": 2, "max": 18},
        {"learning_rate": 0.1},
        {"random_state": 0},
        (2, 6, 18),
        id="hist-boosting-max_iter",
    ),
    pytest.param(
        "sklearn.linear_model.SGDClassifier",
        {"name": "max_iter", "min": 1, "max": 9},
        {"alpha": 1e-4},
        {"random_state": 0},
        (1, 3, 9),
        id="sgd-epochs",
    ),
    pytest.param(
        "sklearn.neural_network.MLPClassifier",
        {"name": "max_iter", "min": 1, "max": 9},
        {"alpha": 1e-4},
        {"random_state": 0, "hidden_layer_sizes": 8},
        (1, 3, 9),
        id="mlp-epochs",
    ),
    pytest.param(
        "sklearn.linear_model.SGDClassifier",
        {"name": "n_samples", "min": 10, "max": 90},
        {"alpha": 1e-4},
        {"random_state": 0},
        (10, 30, 90),
        id="sgd-rows",
    ),
    pytest.param(
        "sklearn.naive_bayes.GaussianNB",
        {"name": "sample_percent", "min": 10, "max": 90},
        {"var_smoothing": 1e-9},
        {},
        (10, 30, 90),
        id="naive-bayes-percent",
    ),
    pytest.param(
        "sklearn.linear_model.LogisticRegression",
        {"name": "folds", "min": 1, "max": 3},
        {"C": 1.0},
        {"max_iter": 500},
        (1, 3),
        id="folds",
    ),
]


@pytest.mark.parametrize(("estimator", "fidelity", "params", "fixed", "steps"), CASES)
def test_paused_and_resumed_equals_trained_straight_through(
    estimator: str,
    fidelity: dict[str, Any],
    params: dict[str, Any],
    fixed: dict[str, Any],
    steps: tuple[int, ...],
) -> None:
    objective, context = study(estimator, fidelity, params, fixed=fixed)
    assert rung_plan(objective, context, POLICY).steps == steps  # type: ignore[union-attr]
    straight = FakeTrial(params, Store())
    full = evaluate(straight, objective, "accuracy", POLICY, context)
    assert straight.steps == list(steps) and not full.stopped
    assert straight.store.saves == list(steps), "a pausing rule: a checkpoint at every step"

    store = Store()
    first = FakeTrial(params, store, stop_at=(steps[-2],))
    out = evaluate(first, objective, "accuracy", POLICY, context)
    assert out.stopped and first.steps == list(steps[:-1])
    assert checkpoint(store)["resource"] == steps[-2]
    second = FakeTrial(params, store, resume_from_step=steps[-2])
    out = evaluate(second, objective, "accuracy", POLICY, context)
    assert second.steps == [steps[-1]], "steps already trained are neither trained nor reported"
    assert not out.stopped and out.values == full.values
    resumed, reference = checkpoint(store), checkpoint(straight.store)
    assert resumed["history"] == reference["history"]
    for a, b in zip(resumed["models"], reference["models"], strict=True):
        np.testing.assert_array_equal(weights(a), weights(b))
    first_part, second_part = resumed["segments"]
    assert (first_part["from"], first_part["to"]) == (0, steps[-2])
    assert (second_part["from"], second_part["to"]) == (steps[-2], steps[-1])
    assert second_part["loaded_checkpoint"] and not first_part["loaded_checkpoint"]


def test_a_resumed_forest_keeps_the_checkpoint_trees_and_grows_only_new_ones() -> None:
    # random_state None: retrained from scratch, the first trees would differ
    objective, context = study(
        "sklearn.ensemble.RandomForestClassifier",
        {"name": "n_estimators", "min": 10, "max": 90},
        {"max_depth": 4},
    )
    store = Store()
    evaluate(
        FakeTrial({"max_depth": 4}, store, stop_at=(30,)), objective, "accuracy", POLICY, context
    )
    paused = checkpoint(store)
    assert [len(m.estimators_) for m in paused["models"]] == [30, 30, 30]
    resumed = FakeTrial({"max_depth": 4}, store, resume_from_step=30)
    evaluate(resumed, objective, "accuracy", POLICY, context)
    final = checkpoint(store)
    for before, after in zip(paused["models"], final["models"], strict=True):
        assert len(after.estimators_) == 90
        for old, kept in zip(before.estimators_, after.estimators_[:30], strict=True):
            np.testing.assert_array_equal(old.tree_.threshold, kept.tree_.threshold)
    segment = final["segments"][-1]
    assert segment["fitted_before"] == [30, 30, 30] and segment["fitted_after"] == [90, 90, 90]
    assert segment["worker"] == "test-worker" and isinstance(segment["pid"], int)


def test_a_resumed_trial_trains_on_from_the_loaded_models() -> None:
    """Whatever the checkpoint holds is what training goes on from: a checkpoint changed
    while the trial was paused gives exactly the models grown from the changed ones."""
    objective, context = study(
        "sklearn.linear_model.SGDClassifier",
        {"name": "max_iter", "min": 1, "max": 9},
        {"alpha": 1e-4},
        fixed={"random_state": 0},
    )
    store = Store()
    evaluate(
        FakeTrial({"alpha": 1e-4}, store, stop_at=(3,)), objective, "accuracy", POLICY, context
    )
    data = checkpoint(store)
    for model in data["models"]:
        model.coef_[:] = 0.0  # not what three epochs would give
    store.data = cloudpickle.dumps(data)
    expected = []
    problem = problem_for(objective, POLICY)
    X, y = problem.data.X, problem.data.y
    for model, (train, _) in zip(copy.deepcopy(data["models"]), problem.folds, strict=True):
        for _ in range(6):
            model.partial_fit(X[train], y[train], classes=np.unique(y[problem.tune_rows]))
        expected.append(model.coef_.copy())
    evaluate(
        FakeTrial({"alpha": 1e-4}, store, resume_from_step=3),
        objective,
        "accuracy",
        POLICY,
        context,
    )
    for model, coef in zip(checkpoint(store)["models"], expected, strict=True):
        np.testing.assert_allclose(model.coef_, coef)


def test_without_a_checkpoint_a_resumed_trial_trains_from_scratch() -> None:
    objective, context = study(
        "sklearn.ensemble.RandomForestClassifier",
        {"name": "n_estimators", "min": 10, "max": 90},
        {"max_depth": 4},
    )
    trial = FakeTrial({"max_depth": 4}, Store(), resume_from_step=30)
    evaluate(trial, objective, "accuracy", POLICY, context)
    assert trial.steps == [10, 30, 90]  # the server ignores the steps it already has
    assert checkpoint(trial.store)["segments"][0]["loaded_checkpoint"] is False


def test_a_rule_that_never_pauses_keeps_no_checkpoint_and_reports_more_steps() -> None:
    objective, context = study(
        "sklearn.ensemble.RandomForestClassifier",
        {"name": "n_samples", "min": 10, "max": 90},
        {"max_depth": 4},
        rule="median",
    )
    trial = FakeTrial({"max_depth": 4}, Store(), stop_at=(30,))
    out = evaluate(trial, objective, "accuracy", POLICY, context)
    assert trial.steps == [10, 30] and out.stopped
    assert trial.store.saves == [] and trial.store.loads == 0
    epochs, context = study(
        "sklearn.linear_model.SGDClassifier",
        {"name": "max_iter", "min": 1, "max": 5},
        {"alpha": 1e-4},
        rule="median",
    )
    trial = FakeTrial({"alpha": 1e-4}, Store())
    evaluate(trial, epochs, "accuracy", POLICY, context)
    assert trial.steps == [1, 2, 3, 4, 5]


def test_elapsed_seconds_are_the_trials_training_time_so_far() -> None:
    objective, context = study(
        "sklearn.ensemble.RandomForestClassifier",
        {"name": "n_estimators", "min": 10, "max": 90},
        {"max_depth": 4},
    )
    store = Store()
    first = FakeTrial({"max_depth": 4}, store, stop_at=(30,))
    evaluate(first, objective, "accuracy", POLICY, context)
    second = FakeTrial({"max_depth": 4}, store, resume_from_step=30)
    evaluate(second, objective, "accuracy", POLICY, context)
    elapsed = [e for _, _, e in first.reports + second.reports]
    assert all(e is not None and e > 0 for e in elapsed)
    assert elapsed == sorted(elapsed)
    assert checkpoint(store)["seconds"] == pytest.approx(elapsed[-1])


def test_configurations_the_workers_cannot_train_by_rungs_are_infeasible() -> None:
    objective, context = study(
        "sklearn.neural_network.MLPClassifier",
        {"name": "max_iter", "min": 1, "max": 9},
        {"alpha": 1e-4},
        fixed={"solver": "lbfgs"},
    )
    with pytest.raises(
        ConfigurationError, match=r"fidelity\.name: MLPClassifier .* no partial_fit"
    ):
        evaluate(FakeTrial({"alpha": 1e-4}, Store()), objective, "accuracy", POLICY, context)
    rows, context = study(
        "sklearn.linear_model.SGDClassifier",
        {"name": "n_samples", "min": 10, "max": 5000},
        {"alpha": 1e-4},
    )
    with pytest.raises(ConfigurationError, match=r"fidelity\.max: n_samples 5000 is more than"):
        evaluate(FakeTrial({"alpha": 1e-4}, Store()), rows, "accuracy", POLICY, context)


def test_preprocessing_is_fitted_once_and_kept_in_the_checkpoint() -> None:
    objective, context = study(
        "sklearn.linear_model.SGDClassifier",
        {"name": "max_iter", "min": 1, "max": 9},
        {"alpha": 1e-4},
        fixed={"random_state": 0},
        preprocessing=["standard_scaler"],
    )
    straight = FakeTrial({"alpha": 1e-4}, Store())
    full = evaluate(straight, objective, "accuracy", POLICY, context)
    store = Store()
    evaluate(
        FakeTrial({"alpha": 1e-4}, store, stop_at=(3,)), objective, "accuracy", POLICY, context
    )
    scaler = checkpoint(store)["models"][0].steps[0][1]
    assert hasattr(scaler, "mean_")
    resumed = FakeTrial({"alpha": 1e-4}, store, resume_from_step=3)
    assert evaluate(resumed, objective, "accuracy", POLICY, context).values == full.values


def test_a_task_run_again_after_the_stop_completes_at_once_from_its_checkpoint() -> None:
    """A worker died after the rule said stop (and the checkpoint was saved) but before it
    completed the trial; Celery runs the task again on another worker."""
    objective, context = study(
        "sklearn.ensemble.RandomForestClassifier",
        {"name": "n_estimators", "min": 10, "max": 90},
        {"max_depth": 4},
    )
    store = Store()
    first = FakeTrial({"max_depth": 4}, store, stop_at=(10,))
    paused = evaluate(first, objective, "accuracy", POLICY, context)
    again = FakeTrial({"max_depth": 4}, store)
    again.should_stop = True  # the trial is "stopping" on the server
    out = evaluate(again, objective, "accuracy", POLICY, context)
    assert out.stopped and out.values == paused.values
    assert again.reports == [] and store.saves == [10]


def test_the_held_out_refit_uses_the_full_resource() -> None:
    from types import SimpleNamespace

    from tuneforge.worker.tasks import refit_params

    objective, context = study(
        "sklearn.ensemble.RandomForestClassifier",
        {"name": "n_estimators", "min": 10, "max": 90},
        {"max_depth": 4},
    )
    data = SimpleNamespace(
        fidelity=context.fidelity,
        early_stopping=context.early_stopping,
        parameters=[{"name": "max_depth"}],
    )
    handle: Any = SimpleNamespace(data=data)
    assert refit_params(handle, objective, {"max_depth": 4}, POLICY) == {
        "max_depth": 4,
        "n_estimators": 90,
    }
    data.fidelity = {"name": "folds", "min": 1, "max": 3}
    assert refit_params(handle, objective, {"max_depth": 4}, POLICY) == {"max_depth": 4}
