"""The managed sklearn objective: splits equal scikit-learn's, held-out rows never reach a trial,
one measurement per fold, stop when told."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import model_selection as ms
from sklearn.datasets import load_iris

from tuneforge.core.errors import InvalidSpec
from tuneforge.core.objective import parse_objective
from tuneforge.core.policy import ObjectivePolicy
from tuneforge.core.trials import Goal, Metric
from tuneforge.worker.objectives.datasets import load_dataset
from tuneforge.worker.objectives.sklearn_cv import cross_validate, holdout_score, prepare

ACC = (Metric("accuracy", Goal.MAXIMIZE),)


def objective(cv: dict[str, Any], test_size: float | None = 0.2, **extra: Any) -> dict[str, Any]:
    spec = {
        "kind": "sklearn",
        "estimator": "sklearn.linear_model.LogisticRegression",
        "fixed_params": {"max_iter": 500},
        "dataset": {"source": "sklearn", "name": "iris"},
        "cv": cv,
        "scoring": "accuracy",
        "test_size": test_size,
        **extra,
    }
    parsed = parse_objective(spec, ACC)
    assert parsed is not None
    return parsed


SPLITTERS = [
    ({"type": "kfold", "n_splits": 5, "seed": 3}, ms.KFold(5, shuffle=True, random_state=3)),
    ({"type": "kfold", "n_splits": 4, "shuffle": False}, ms.KFold(4)),
    (
        {"type": "stratified_kfold", "n_splits": 5, "seed": 1},
        ms.StratifiedKFold(5, shuffle=True, random_state=1),
    ),
    (
        {"type": "repeated_kfold", "n_splits": 3, "n_repeats": 2, "seed": 2},
        ms.RepeatedKFold(n_splits=3, n_repeats=2, random_state=2),
    ),
    (
        {"type": "repeated_stratified_kfold", "n_splits": 3, "n_repeats": 2, "seed": 5},
        ms.RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=5),
    ),
    ({"type": "time_series", "n_splits": 4, "gap": 2}, ms.TimeSeriesSplit(4, gap=2)),
    ({"type": "leave_one_out"}, ms.LeaveOneOut()),
    (
        {"type": "shuffle_split", "n_splits": 6, "test_size": 0.3, "seed": 9},
        ms.ShuffleSplit(6, test_size=0.3, random_state=9),
    ),
]


@pytest.mark.parametrize(("cv", "reference"), SPLITTERS, ids=[c[0]["type"] for c in SPLITTERS])
def test_each_cv_type_matches_scikit_learn_and_never_touches_held_out_rows(
    cv: dict[str, Any], reference: Any
) -> None:
    problem = prepare(objective(cv))
    X, y = load_iris(return_X_y=True)
    tune, test = problem.tune_rows, problem.test_rows
    assert len(test) == 30 and len(np.intersect1d(tune, test)) == 0
    assert sorted([*tune, *test]) == list(range(len(y)))
    expected = [(tune[a], tune[b]) for a, b in reference.split(X[tune], y[tune])]
    assert len(problem.folds) == len(expected)
    for (train, val), (exp_train, exp_val) in zip(problem.folds, expected, strict=True):
        assert np.array_equal(train, exp_train) and np.array_equal(val, exp_val)
        assert not set(train) & set(test) and not set(val) & set(test)


def test_held_out_split_is_stratified_and_seeded() -> None:
    a = prepare(objective({"type": "kfold"}))
    b = prepare(objective({"type": "kfold"}))
    c = prepare(objective({"type": "kfold"}, seed=1))
    assert np.array_equal(a.test_rows, b.test_rows)
    assert not np.array_equal(a.test_rows, c.test_rows)
    _, y = load_iris(return_X_y=True)
    assert np.bincount(y[a.test_rows]).tolist() == [10, 10, 10]


def test_time_series_keeps_the_last_rows_for_testing() -> None:
    problem = prepare(objective({"type": "time_series", "n_splits": 3}, test_size=0.1))
    assert problem.test_rows.tolist() == list(range(135, 150))


def test_group_kfold_from_a_csv_matches_scikit_learn(tmp_path: Path) -> None:
    import pandas as pd

    X, y = load_iris(return_X_y=True)
    groups = np.arange(len(y)) % 7
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(label=y, site=groups)
    path = tmp_path / "iris.csv"
    frame.to_csv(path, index=False)
    spec = objective(
        {"type": "group_kfold", "n_splits": 3},
        test_size=None,
        dataset={"source": "csv", "path": str(path), "target": "label", "groups": "site"},
    )
    policy = ObjectivePolicy(data_roots=(str(tmp_path),))
    problem = prepare(spec, policy)
    assert len(problem.test_rows) == 0
    expected = list(ms.GroupKFold(3).split(X, y, groups))
    for (train, val), (exp_train, exp_val) in zip(problem.folds, expected, strict=True):
        assert np.array_equal(train, exp_train) and np.array_equal(val, exp_val)
        assert not set(groups[train]) & set(groups[val])
    assert load_dataset(spec["dataset"], policy=policy).X.shape == (150, 4)


class Recorder:
    def __init__(self, stop_after: int | None = None) -> None:
        self.calls: list[tuple[int, dict[str, float]]] = []
        self.stop_after = stop_after

    def report(self, step: int, values: Mapping[str, float]) -> bool:
        self.calls.append((step, dict(values)))
        return self.stop_after is not None and step >= self.stop_after


def test_one_measurement_per_fold_with_the_running_mean() -> None:
    spec = objective({"type": "stratified_kfold", "n_splits": 5})
    rec = Recorder()
    out = cross_validate(spec, {"C": 1.0}, "accuracy", rec)
    assert [s for s, _ in rec.calls] == [1, 2, 3, 4, 5]
    for i, (_, values) in enumerate(rec.calls, start=1):
        assert values["accuracy"] == pytest.approx(np.mean(out.fold_scores[:i]))
    assert not out.stopped and 0.8 < out.score <= 1.0


def test_stops_when_the_server_says_so() -> None:
    rec = Recorder(stop_after=2)
    out = cross_validate(objective({"type": "kfold", "n_splits": 5}), {"C": 0.01}, "accuracy", rec)
    assert out.stopped and len(out.fold_scores) == 2 and len(rec.calls) == 2


def test_holdout_score_refits_on_the_tuning_part() -> None:
    spec = objective({"type": "stratified_kfold", "n_splits": 3})
    assert 0.8 < holdout_score(spec, {"C": 1.0}) <= 1.0
    with pytest.raises(InvalidSpec, match="held-out"):
        holdout_score(objective({"type": "kfold"}, test_size=None), {"C": 1.0})


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"estimator": "os.system"}, "objective.estimator"),
        ({"estimator": "sklearn.svm.NoSuchModel"}, "objective.estimator"),
        ({"cv": {"type": "bootstrap"}}, "objective.cv.type"),
        ({"cv": {"type": "kfold", "n_splits": 1}}, "objective.cv.n_splits"),
        ({"cv": {"type": "group_kfold"}}, "objective.cv.type"),
        ({"scoring": "no_such_scorer"}, "objective.scoring"),
        ({"dataset": {"source": "sklearn", "name": "mnist"}}, "objective.dataset.name"),
        ({"dataset": {"source": "csv", "path": "x.csv"}}, "objective.dataset.target"),
        ({"test_size": 1.5}, "objective.test_size"),
        ({"preprocessing": ["pca"]}, "objective.preprocessing[0]"),
        ({"colour": 1}, "objective.colour"),
    ],
)
def test_bad_objectives_name_the_field(change: dict[str, Any], field: str) -> None:
    spec = {
        "kind": "sklearn",
        "estimator": "sklearn.svm.SVC",
        "dataset": {"source": "sklearn", "name": "iris"},
        "cv": {"type": "kfold"},
        **change,
    }
    with pytest.raises(InvalidSpec) as info:  # the shape, then what the default policy allows
        ObjectivePolicy().check_spec(parse_objective(spec, ACC), ())
    assert info.value.field == field


def test_scorer_with_a_minimize_goal_is_rejected() -> None:
    spec = {
        "kind": "sklearn",
        "estimator": "sklearn.svm.SVR",
        "dataset": {"source": "sklearn", "name": "diabetes"},
        "scoring": "r2",
    }
    with pytest.raises(InvalidSpec, match="maximize"):
        parse_objective(spec, (Metric("r2", Goal.MINIMIZE),))


def test_outer_folds_partition_the_rows_and_hold_each_fold_out() -> None:
    seen: list[int] = []
    for k in range(3):
        spec = objective(
            {"type": "stratified_kfold", "n_splits": 3},
            test_size=None,
            outer_fold={"n_splits": 3, "index": k, "seed": 4},
        )
        problem = prepare(spec)
        assert not set(problem.tune_rows) & set(problem.test_rows)
        for train, val in problem.folds:
            assert not (set(train) | set(val)) & set(problem.test_rows)
        seen += problem.test_rows.tolist()
    assert sorted(seen) == list(range(150))
