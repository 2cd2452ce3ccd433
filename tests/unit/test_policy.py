"""The operator's policy of what a study spec may name (tuneforge.core.policy)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tuneforge.api.settings import Settings
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.estimators import default_estimators
from tuneforge.core.policy import ANY_MODULE, ObjectivePolicy
from tuneforge.core.space import SearchSpace
from tuneforge.worker.settings import WorkerSettings

STRICT = ObjectivePolicy()


def refused(check: Any, *args: Any) -> InvalidSpec:
    with pytest.raises(InvalidSpec) as info:
        check(*args)
    return info.value


def test_the_defaults_allow_no_python_module_no_file_and_no_url() -> None:
    assert refused(STRICT.check_callable, "tests.e2e.objectives:f").field == "objective.callable"
    err = refused(STRICT.data_location, "data.csv")
    assert err.field == "objective.dataset.path" and "TUNEFORGE_DATA_ROOTS" in err.message
    err = refused(STRICT.data_location, "https://example.com/d.csv")
    assert "TUNEFORGE_DATA_URL_SCHEMES" in err.message


@pytest.mark.parametrize(
    ("allowed", "target", "ok"),
    [
        (("team.objectives",), "team.objectives:train", True),
        (("team.objectives",), "team.objectives.nlp:train", True),
        (("team.objectives",), "team.objectivesx:train", False),
        (("team.objectives",), "team:train", False),
        (("team",), "os:system", False),
        (("team",), "team.jobs:__init__", False),
        ((ANY_MODULE,), "anything.at.all:run", True),
    ],
)
def test_python_objectives_only_from_listed_modules(
    allowed: tuple[str, ...], target: str, ok: bool
) -> None:
    policy = ObjectivePolicy(python_modules=allowed)
    if ok:
        policy.check_callable(target)
    else:
        assert refused(policy.check_callable, target).field == "objective.callable"


def test_the_default_estimator_list_is_plain_classifiers_and_regressors() -> None:
    listed = default_estimators()
    assert {"sklearn.svm.SVC", "sklearn.ensemble.RandomForestRegressor"} <= listed
    for meta in (
        "sklearn.pipeline.Pipeline",
        "sklearn.ensemble.BaggingClassifier",
        "sklearn.ensemble.StackingClassifier",
        "sklearn.model_selection.GridSearchCV",
        "sklearn.preprocessing.FunctionTransformer",
        "sklearn.svm._classes.SVC",
    ):
        assert meta not in listed
        assert refused(STRICT.check_estimator, meta).field == "objective.estimator"


def test_an_operator_can_add_an_estimator_class() -> None:
    path = "sklearn.ensemble.BaggingClassifier"
    assert "n_estimators" in ObjectivePolicy(estimators=(path,)).check_estimator(path)
    assert refused(ObjectivePolicy(estimators=("no.such.Model",)).check_estimator, "no.such.Model")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"memory": "/tmp/cache"}, "objective.fixed_params.memory"),
        ({"n_jobs": 10_000}, "objective.fixed_params.n_jobs"),
        ({"n_jobs": -1}, "objective.fixed_params.n_jobs"),
        ({"max_depth": {"a": 1}}, "objective.fixed_params.max_depth"),
        ({"class_weight": "/etc/passwd"}, "objective.fixed_params.class_weight"),
        ({"criterion": "https://x"}, "objective.fixed_params.criterion"),
        ({"colour": 1}, "objective.fixed_params.colour"),
        ({"max_depth": float("inf")}, "objective.fixed_params.max_depth"),
        ({"max_features": ["a"] * 101}, "objective.fixed_params.max_features"),
    ],
)
def test_estimator_options_are_checked(options: dict[str, Any], field: str) -> None:
    path = "sklearn.ensemble.RandomForestClassifier"
    err = refused(STRICT.check_options, path, options, "objective.fixed_params")
    assert err.field == field


def test_fine_options_pass() -> None:
    options = {"n_jobs": 1, "max_depth": None, "criterion": "gini", "class_weight": "balanced"}
    STRICT.check_options("sklearn.ensemble.RandomForestClassifier", options, "x")
    ObjectivePolicy(max_n_jobs=8).check_options(
        "sklearn.ensemble.RandomForestClassifier", {"n_jobs": 8}, "x"
    )


def test_tuned_parameters_follow_the_same_rules() -> None:
    path = "sklearn.ensemble.RandomForestClassifier"
    space = SearchSpace.from_list(
        [
            {"name": "max_depth", "type": "int", "low": 2, "high": 8},
            {"name": "n_jobs", "type": "int", "low": 1, "high": 64},
        ]
    )
    assert refused(STRICT.check_parameters, path, space.parameters).field == "parameters[1].high"
    space = SearchSpace.from_list([{"name": "memory", "type": "categorical", "values": ["a"]}])
    assert refused(STRICT.check_parameters, path, space.parameters).field == "parameters[0].name"
    space = SearchSpace.from_list(
        [{"name": "criterion", "type": "categorical", "values": ["gini", "../x"]}]
    )
    err = refused(STRICT.check_parameters, path, space.parameters)
    assert err.field == "parameters[0].values[1]"


def test_paths_stay_under_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    policy = ObjectivePolicy(data_roots=(str(root),))
    assert policy.data_location("a/b.csv") == str(root / "a" / "b.csv")
    assert policy.data_location(str(root / "b.csv")) == str(root / "b.csv")
    for path in ("../x.csv", "a/../../x.csv", "/etc/passwd", "~/x.csv", str(tmp_path / "x.csv")):
        err = refused(policy.data_location, path)
        assert err.field == "objective.dataset.path" and "data roots" in err.message
    assert refused(policy.data_location, "a\x00.csv").field == "objective.dataset.path"
    assert policy.data_location("%2e%2e/x.csv") == str(root / "%2e%2e" / "x.csv")


def test_a_symlink_out_of_a_root_is_refused_like_a_missing_file(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (outside / "s.csv").write_text("a\n1\n")
    (root / "link.csv").symlink_to(outside / "s.csv")
    (root / "dir").symlink_to(outside)
    policy = ObjectivePolicy(data_roots=(str(root),))
    messages = {
        refused(policy.resolve_data_path, path, os.path.realpath).message
        for path in ("link.csv", "dir/s.csv", "dir/missing.csv", str(outside / "s.csv"))
    }
    assert len(messages) == 1
    inside = root / "ok.csv"
    inside.write_text("a\n1\n")
    assert policy.resolve_data_path("ok.csv", os.path.realpath) == os.path.realpath(inside)


def test_url_schemes_only_where_allowed() -> None:
    policy = ObjectivePolicy(data_roots=("/srv/data",), url_schemes=("HTTPS",))
    assert policy.data_location("https://example.com/d.csv") == "https://example.com/d.csv"
    for url in ("http://169.254.169.254/", "file:///etc/passwd", "s3://b/k", "ftp://h/f"):
        assert "not allowed" in refused(policy.data_location, url).message
    assert refused(policy.data_location, "file:/etc/passwd").field == "objective.dataset.path"
    file_allowed = ObjectivePolicy(data_roots=("/srv/data",), url_schemes=("file",))
    assert "data roots" in refused(file_allowed.data_location, "file:///etc/passwd").message


def test_settings_read_comma_lists_and_agree_between_server_and_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TUNEFORGE_PYTHON_OBJECTIVE_MODULES", "team.a, team.b")
    monkeypatch.setenv("TUNEFORGE_DATA_ROOTS", f"{tmp_path},/srv/data")
    monkeypatch.setenv("TUNEFORGE_DATA_URL_SCHEMES", "s3")
    monkeypatch.setenv("TUNEFORGE_ESTIMATORS", "sklearn.ensemble.BaggingClassifier")
    monkeypatch.setenv("TUNEFORGE_MAX_N_JOBS", "4")
    server = Settings().objective_policy()
    assert server == WorkerSettings().objective_policy()
    assert server.python_modules == ("team.a", "team.b")
    assert server.data_roots == (str(tmp_path), "/srv/data")
    assert server.url_schemes == ("s3",) and server.max_n_jobs == 4


def test_the_embedded_server_trusts_its_own_user(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TUNEFORGE_PYTHON_OBJECTIVE_MODULES", raising=False)
    monkeypatch.setenv("TUNEFORGE_DATA_ROOTS", "/srv/data")
    policy = Settings().for_local_user(str(tmp_path)).objective_policy()
    assert policy.data_roots == (str(tmp_path), "/srv/data")
    policy.check_callable("my.own.code:objective")
    assert policy.url_schemes == ()
