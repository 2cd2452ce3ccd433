"""Managed pipelines: the spec's shape, what the operator's policy allows, the names and
values of tuned ``step__param`` parameters, and the fitted object (core/pipelines.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from tuneforge.core.errors import InvalidSpec
from tuneforge.core.pipelines import build_pipeline, check_pipeline, parse_pipeline
from tuneforge.core.policy import ObjectivePolicy
from tuneforge.core.space import SearchSpace

POLICY = ObjectivePolicy()


def pipeline(**extra: Any) -> dict[str, Any]:
    return {
        "columns": {
            "numeric": {"impute": "median", "scale": "standard"},
            "categorical": {"impute": "most_frequent", "encode": "onehot"},
        },
        "steps": [
            {
                "name": "pca",
                "estimator": "sklearn.decomposition.PCA",
                "params": {"n_components": 2},
            },
            {"name": "model", "estimator": "sklearn.linear_model.LogisticRegression"},
        ],
        **extra,
    }


def params(*specs: dict[str, Any]) -> Any:
    return SearchSpace.from_list(list(specs)).parameters


def field_of(raw: Any, parameters: Any = ()) -> str | None:
    with pytest.raises(InvalidSpec) as info:
        check_pipeline(parse_pipeline(raw), parameters, POLICY)
    return info.value.field


def test_the_shape_is_normalized_with_defaults() -> None:
    parsed = parse_pipeline({"columns": {"categorical": {}}, "steps": [pipeline()["steps"][1]]})
    assert parsed["columns"] == {
        "numeric": None,
        "categorical": {"impute": None, "encode": "onehot"},
    }
    assert parsed["steps"] == [
        {"name": "model", "estimator": "sklearn.linear_model.LogisticRegression", "params": {}}
    ]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("not an object", "objective.pipeline"),
        ({"steps": []}, "objective.pipeline.steps"),
        ({"steps": [{"name": "Model", "estimator": "a.B"}]}, "objective.pipeline.steps[0].name"),
        ({"steps": [{"name": "a__b", "estimator": "a.B"}]}, "objective.pipeline.steps[0].name"),
        ({"steps": [{"name": "columns", "estimator": "a.B"}]}, "objective.pipeline.steps[0].name"),
        ({"steps": [{"name": "m", "estimator": "nodots"}]}, "objective.pipeline.steps[0].estimator"),
        ({"steps": [{"name": "m", "estimator": "a.B", "x": 1}]}, "objective.pipeline.steps[0].x"),
        (
            {"steps": [{"name": "m", "estimator": "a.B"}, {"name": "m", "estimator": "a.C"}]},
            "objective.pipeline.steps[1].name",
        ),
        ({"columns": {"text": {}}, "steps": [{"name": "m", "estimator": "a.B"}]},
         "objective.pipeline.columns.text"),
        ({"columns": {"numeric": {"scale": "zscore"}}, "steps": [{"name": "m", "estimator": "a.B"}]},
         "objective.pipeline.columns.numeric.scale"),
        ({"columns": {"categorical": {"encode": None}}, "steps": [{"name": "m", "estimator": "a.B"}]},
         "objective.pipeline.columns.categorical.encode"),
        ({"columns": {"categorical": {"impute": "median"}}, "steps": [{"name": "m", "estimator": "a.B"}]},
         "objective.pipeline.columns.categorical.impute"),
    ],
)  # fmt: skip
def test_a_bad_shape_names_its_field(raw: Any, field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_pipeline(raw)
    assert info.value.field == field


def test_steps_must_be_allowed_transformers_then_an_allowed_model() -> None:
    last_not_a_model = pipeline(steps=[pipeline()["steps"][0]])
    assert field_of(last_not_a_model) == "objective.pipeline.steps[0].estimator"
    shell = {"name": "shell", "estimator": "subprocess.Popen"}
    assert field_of(pipeline(steps=[shell, pipeline()["steps"][1]])) == (
        "objective.pipeline.steps[0].estimator"
    )
    meta = {"name": "model", "estimator": "sklearn.ensemble.BaggingClassifier"}
    assert field_of(pipeline(steps=[meta])) == "objective.pipeline.steps[0].estimator"


def test_fixed_options_are_known_allowed_and_valid() -> None:
    def with_model_params(**options: Any) -> dict[str, Any]:
        model = {**pipeline()["steps"][1], "params": options}
        return pipeline(steps=[model])

    assert field_of(with_model_params(Cx=1)) == "objective.pipeline.steps[0].params.Cx"
    assert field_of(with_model_params(C=-1.0)) == "objective.pipeline.steps[0].params.C"
    assert field_of(with_model_params(n_jobs=8)) == "objective.pipeline.steps[0].params.n_jobs"
    assert field_of(with_model_params(solver="/etc/passwd")) == (
        "objective.pipeline.steps[0].params.solver"
    )


def test_tuned_parameters_are_step_params_with_accepted_values() -> None:
    good = params(
        {"name": "model__C", "type": "float", "low": 0.01, "high": 10, "scale": "log"},
        {"name": "pca__n_components", "type": "int", "low": 1, "high": 3},
        {"name": "columns__numeric__scale__with_mean", "type": "categorical", "values": [True, False]},
        {"name": "columns__categorical__encode__min_frequency", "type": "int", "low": 1, "high": 5},
    )  # fmt: skip
    check_pipeline(parse_pipeline(pipeline()), good, POLICY)
    with pytest.raises(InvalidSpec) as info:
        check_pipeline(parse_pipeline(pipeline()), params({"name": "model__Cc", "type": "float", "low": 1, "high": 2}), POLICY)  # fmt: skip
    assert info.value.field == "parameters[0].name" and "'model__C'" in info.value.message
    bad_value = params({"name": "model__C", "type": "float", "low": -1, "high": 2})
    assert field_of(pipeline(), bad_value) == "parameters[0].low"
    bad_choice = params({"name": "model__penalty", "type": "categorical", "values": ["l2", "l7"]})
    assert field_of(pipeline(), bad_choice) == "parameters[0].values[1]"
    plain_name = params({"name": "C", "type": "float", "low": 1, "high": 2})
    assert field_of(pipeline(), plain_name) == "parameters[0].name"
    internals = params({"name": "columns__remainder", "type": "categorical", "values": ["drop"]})
    assert field_of(pipeline(), internals) == "parameters[0].name"


def test_the_built_pipeline_fits_text_missing_values_and_ignores_dates() -> None:
    rng = np.random.default_rng(0)
    n = 120
    X = pd.DataFrame(
        {
            "a": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            # text as the workers load it: Python strings, NaN where a value is missing
            "b": pd.Series(rng.choice(["x", "y"], size=n), dtype=object).where(
                rng.random(n) > 0.2, np.nan
            ),
            "when": pd.date_range("2024-01-01", periods=n),
        }
    )
    y = (X["a"].fillna(0) > 0).astype(int).to_numpy()
    model = build_pipeline(parse_pipeline(pipeline()), {"model__C": 0.5}, POLICY)
    assert model.get_params()["model__C"] == 0.5
    model.fit(X, y)
    assert model.named_steps["columns"].transform(X).shape == (n, 1 + 2)  # a, b=x, b=y
    assert model.score(X, y) > 0.8


def test_a_plain_estimators_values_are_checked_at_creation_too() -> None:
    from tuneforge.core.objective import parse_objective
    from tuneforge.core.trials import Goal, Metric, MetricRole

    metrics = [Metric("accuracy", Goal.MAXIMIZE, MetricRole.OBJECTIVE)]

    def refused(fixed: dict[str, Any], parameter: dict[str, Any]) -> str | None:
        objective = parse_objective(
            {
                "kind": "sklearn",
                "estimator": "sklearn.svm.SVC",
                "fixed_params": fixed,
                "dataset": {"source": "sklearn", "name": "iris"},
            },
            metrics,
        )
        with pytest.raises(InvalidSpec) as info:
            POLICY.check_spec(objective, params(parameter))
        return info.value.field

    c = {"name": "C", "type": "float", "low": 0.1, "high": 10}
    assert refused({"kernel": "no-such-kernel"}, c) == "objective.fixed_params.kernel"
    assert refused({}, {**c, "low": 0}) == "parameters[0].low"
    gamma = {"name": "gamma", "type": "categorical", "values": ["scale", "nope"]}
    assert refused({}, gamma) == "parameters[0].values[1]"
