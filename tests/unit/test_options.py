"""The one option-checking mechanism of algorithms and stopping rules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field, ValidationError

from tuneforge.core.algorithms import get_algorithm, validate_algorithm
from tuneforge.core.algorithms import options_models as algorithm_models
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.options import NoOptions, OptionsModel, describe_field, parse_options
from tuneforge.core.space import SearchSpace
from tuneforge.core.stopping import get_rule, validate_early_stopping
from tuneforge.core.stopping import options_models as rule_models

SPACE = SearchSpace.from_list(
    [{"name": "x", "type": "float", "low": 0.0, "high": 1.0, "grid_points": 3}]
)


class Sample(OptionsModel):
    count: int = Field(3, ge=1, le=10)
    share: float | None = Field(None, gt=0, le=1)
    flag: bool = True
    low: int = Field(0, ge=0)


def check(options: dict[str, Any]) -> OptionsModel:
    return parse_options(Sample, options, prefix="things", owner="thing 'sample'")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"count": 2.5}, "things.count: must be an integer in [1, 10], got 2.5"),
        ({"count": True}, "things.count: must be an integer in [1, 10], got True"),
        ({"count": "3"}, "things.count: must be an integer in [1, 10], got '3'"),
        ({"count": 11}, "things.count: must be an integer in [1, 10], got 11"),
        ({"share": 0}, "things.share: must be null or a finite number in (0, 1], got 0"),
        ({"share": float("nan")}, "things.share: must be null or a finite number in (0, 1]"),
        ({"flag": 1}, "things.flag: must be true or false, got 1"),
        ({"low": -1}, "things.low: must be an integer >= 0, got -1"),
        ({"size": 1}, "things.size: unknown option for thing 'sample' (allowed: count, flag, "),
    ],
)
def test_errors_name_the_field_and_state_the_rule(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        check(options)
    assert str(info.value).startswith(message)
    assert info.value.field == f"things.{next(iter(options))}"


def test_good_options_fill_defaults_and_stay_frozen() -> None:
    parsed = check({"share": 1, "count": 10})
    assert parsed.model_dump() == {"count": 10, "share": 1.0, "flag": True, "low": 0}
    with pytest.raises(ValidationError):
        parsed.count = 4  # type: ignore[misc]
    assert describe_field(Sample.model_fields["low"]) == "must be an integer >= 0"


def test_every_registered_algorithm_and_rule_has_a_typed_model() -> None:
    models = {**algorithm_models(), **{f"rule:{k}": v for k, v in rule_models().items()}}
    assert {"random", "grid", "sobol", "gp", "tpe", "cmaes", "auto", "rule:median"} <= set(models)
    for name, model in models.items():
        assert issubclass(model, OptionsModel), name
        schema = model.model_json_schema()
        assert schema["additionalProperties"] is False and schema["type"] == "object"
    assert algorithm_models()["random"] is NoOptions
    assert set(algorithm_models()["tpe"].model_fields) == {
        "n_startup_trials",
        "n_ei_candidates",
        "gamma",
        "multivariate",
        "max_observations",
    }
    median = rule_models()["median"].model_json_schema()["properties"]
    assert median["min_peers"] == {
        "default": 3,
        "description": "No stopping at a step fewer other trials have reached.",
        "minimum": 1,
        "title": "Min Peers",
        "type": "integer",
    }


@pytest.mark.parametrize("name", ["random", "grid", "sobol", "gp", "tpe", "cmaes", "auto"])
def test_algorithm_defaults_are_their_models_defaults(name: str) -> None:
    cls = get_algorithm(name)
    assert validate_algorithm(name, {}, SPACE) == cls.default_options()
    assert cls(None).options == cls.default_options()


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("tpe", {"n_startup_trials": -1}, "must be an integer in [0, 1000000], got -1"),
        ("gp", {"xi": False}, "must be a finite number in [0, 10], got False"),
        ("cmaes", {"popsize": 1}, "must be null or an integer in [2, 10000], got 1"),
        ("sobol", {"scramble": "yes"}, "must be true or false, got 'yes'"),
        ("grid", {"grid_points": 0}, "must be null or an integer in [1, 10000], got 0"),
        ("random", {"seed": 1}, "unknown option for algorithm 'random' (allowed: none)"),
    ],
)
def test_algorithm_messages(name: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        validate_algorithm(name, options, SPACE)
    assert info.value.field == f"algorithm_options.{next(iter(options))}"
    assert info.value.message == message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_peers": 0}, "must be an integer >= 1, got 0"),
        ({"use_best_so_far": 1}, "must be true or false, got 1"),
        ({"patience": 3}, "unknown option for early-stopping rule 'median' (allowed: "),
    ],
)
def test_rule_messages(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        validate_early_stopping({"rule": "median", **options}, None)
    assert info.value.field == f"early_stopping.{next(iter(options))}"
    assert info.value.message.startswith(message)
    assert get_rule("median").default_options()["min_peers"] == 3
