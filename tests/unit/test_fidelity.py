"""A managed objective's fidelity, checked when a study is created: which resources each
estimator can be trained by, the field every refusal names, and the steps the workers report."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tuneforge.core.errors import InvalidSpec
from tuneforge.core.fidelity import report_steps
from tuneforge.core.study import parse_study_spec

FOREST = "sklearn.ensemble.RandomForestClassifier"


def spec(
    fidelity: dict[str, Any] | None,
    *,
    estimator: str = FOREST,
    rule: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    **objective: Any,
) -> dict[str, Any]:
    return {
        "name": "s",
        "parameters": parameters or [{"name": "max_depth", "type": "int", "low": 1, "high": 8}],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "fidelity": fidelity,
        "early_stopping": rule or {"rule": "asha"},
        "objective": {
            "kind": "sklearn",
            "estimator": estimator,
            "dataset": {"source": "sklearn", "name": "iris"},
            "cv": {"type": "kfold", "n_splits": 3},
            **objective,
        },
    }


N_EST = {"name": "n_estimators", "min": 10, "max": 90}
EPOCHS = {"name": "max_iter", "min": 1, "max": 27}
ALPHA = [{"name": "alpha", "type": "float", "low": 1e-5, "high": 1, "scale": "log"}]

ACCEPTED = [
    ("forest-trees", spec(N_EST)),
    ("extra-trees", spec(N_EST, estimator="sklearn.ensemble.ExtraTreesRegressor")),
    ("boosting", spec(N_EST, estimator="sklearn.ensemble.GradientBoostingClassifier")),
    (
        "hist-boosting",
        spec(
            EPOCHS,
            estimator="sklearn.ensemble.HistGradientBoostingClassifier",
            parameters=[{"name": "learning_rate", "type": "float", "low": 0.01, "high": 1}],
        ),
    ),
    ("sgd", spec(EPOCHS, estimator="sklearn.linear_model.SGDClassifier", parameters=ALPHA)),
    ("mlp", spec(EPOCHS, estimator="sklearn.neural_network.MLPRegressor", parameters=ALPHA)),
    (
        "rows-partial-fit",
        spec(
            {"name": "n_samples", "min": 10, "max": 90},
            estimator="sklearn.linear_model.SGDClassifier",
            parameters=ALPHA,
        ),
    ),
    (
        "rows-refit-median",
        spec({"name": "sample_percent", "min": 10, "max": 100}, rule={"rule": "median"}),
    ),
    ("folds", spec({"name": "folds", "min": 1, "max": 3})),
    ("folds-wilcoxon", spec({"name": "folds", "min": 1, "max": 3}, rule={"rule": "wilcoxon"})),
    ("hyperband", spec(N_EST, rule={"rule": "hyperband"})),
    ("warm-start-true", spec(N_EST, fixed_params={"warm_start": True})),
]

REFUSED = [
    ("not-a-resource", spec({"name": "epochs", "min": 1, "max": 9}), "fidelity.name"),
    ("tree-max-iter", spec(EPOCHS), "fidelity.name"),
    (
        "logistic-max-iter",
        spec(
            EPOCHS,
            estimator="sklearn.linear_model.LogisticRegression",
            parameters=[{"name": "C", "type": "float", "low": 0.1, "high": 1}],
        ),
        "fidelity.name",
    ),
    ("fractional-min", spec({"name": "n_estimators", "min": 0.5, "max": 9}), "fidelity.min"),
    ("tuned-too", spec({"name": "max_depth", "min": 1, "max": 9}), "fidelity.name"),
    (
        "fixed-too",
        spec(N_EST, fixed_params={"n_estimators": 5}),
        "objective.fixed_params.n_estimators",
    ),
    (
        "warm-start-off",
        spec(N_EST, fixed_params={"warm_start": False}),
        "objective.fixed_params.warm_start",
    ),
    (
        "warm-start-tuned",
        spec(
            N_EST,
            parameters=[{"name": "warm_start", "type": "categorical", "values": [True, False]}],
        ),
        "parameters[0].name",
    ),
    ("rows-refit-asha", spec({"name": "n_samples", "min": 10, "max": 90}), "early_stopping.rule"),
    (
        "percent-over-100",
        spec({"name": "sample_percent", "min": 10, "max": 200}, rule={"rule": "median"}),
        "fidelity.max",
    ),
    ("more-folds-than-cv", spec({"name": "folds", "min": 1, "max": 5}), "fidelity.max"),
    (
        "folds-of-leave-one-out",
        spec({"name": "folds", "min": 1, "max": 5}, cv={"type": "leave_one_out"}),
        "fidelity.name",
    ),
    ("wilcoxon-needs-folds", spec(N_EST, rule={"rule": "wilcoxon"}), "early_stopping.rule"),
]


@pytest.mark.parametrize("body", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_resources_the_workers_can_train_by(body: dict[str, Any]) -> None:
    parse_study_spec(body)


@pytest.mark.parametrize(("body", "field"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refusals_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_study_spec(body)
    assert info.value.field == field, str(info.value)


def test_python_objectives_cannot_resume_a_paused_trial() -> None:
    body = copy.deepcopy(spec(N_EST))
    body["objective"] = {"kind": "python", "callable": "team.objectives:train"}
    with pytest.raises(InvalidSpec) as info:
        parse_study_spec(body)
    assert info.value.field == "early_stopping.rule"
    assert "python objective cannot resume" in str(info.value)
    body["early_stopping"] = {"rule": "median"}
    parse_study_spec(body)  # its function reports its own steps


def test_an_estimator_outside_the_default_list_is_checked_by_the_workers() -> None:
    # nothing is imported before the operator's policy allowed it: only the shape is checked
    parse_study_spec(spec({"name": "epochs", "min": 1, "max": 9}, estimator="team.models.Net"))
    with pytest.raises(InvalidSpec, match=r"fidelity\.max"):
        parse_study_spec(spec({"name": "folds", "min": 1, "max": 9}, estimator="team.models.Net"))


@pytest.mark.parametrize(
    ("kind", "low", "high", "rule", "steps"),
    [
        ("warm_start", 10, 90, {"rule": "asha", "reduction_factor": 3}, (10, 30, 90)),
        ("warm_start", 10, 270, {"rule": "hyperband", "reduction_factor": 3}, (10, 30, 90, 270)),
        ("warm_start", 1, 20, {"rule": "asha", "reduction_factor": 4}, (1, 4, 16, 20)),
        ("warm_start", 10, 100, {"rule": "median"}, (10, 30, 90, 100)),
        ("epochs", 1, 5, {"rule": "median"}, (1, 2, 3, 4, 5)),
        ("epochs", 1, 27, {"rule": "asha", "reduction_factor": 3}, (1, 3, 9, 27)),
        ("epochs", 1, 500, {"rule": "none"}, (1, 3, 9, 27, 81, 243, 500)),
        ("folds", 2, 5, {"rule": "wilcoxon"}, (2, 3, 4, 5)),
    ],
)
def test_the_steps_the_workers_report(
    kind: Any, low: int, high: int, rule: dict[str, Any], steps: tuple[int, ...]
) -> None:
    assert report_steps(kind, low, high, rule) == steps
