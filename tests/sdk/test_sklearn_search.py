"""``tuneforge.sklearn.TuneSearchCV`` against GridSearchCV, on an embedded server (real app,
real SQLite database, no mocks)."""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from scipy.stats import loguniform, norm, randint, uniform
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import load_digits
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.svm import SVC

import tuneforge
import tuneforge.sklearn as tsk
from tuneforge.sklearn import TuneSearchCV
from tuneforge.sklearn_space import search_space_of

#: What TuneSearchCV adds to GridSearchCV's fitted attributes.
EXTRA_ATTRIBUTES = {"study_name_", "study_id_", "trial_numbers_", "pruned_"}
MEDIAN = {"rule": "median", "n_startup_trials": 3, "min_peers": 2}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuneforge.Client]:
    with tuneforge.local(tmp_path_factory.mktemp("sklearn") / "t.db") as c:
        yield c


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """600 digits to tune on (the same for both searches) and 300 others to predict."""
    X, y = load_digits(return_X_y=True)
    order = np.random.RandomState(0).permutation(len(X))
    fit, held = order[:600], order[600:900]
    return X[fit], y[fit], X[held], y[held]


@pytest.fixture(scope="module")
def small(digits: Any) -> tuple[np.ndarray, np.ndarray]:
    X, y, _, _ = digits
    return X[:300], y[:300]


def public(obj: Any) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def test_matches_grid_search_on_digits(client: tuneforge.Client, digits: Any) -> None:
    """TuneSearchCV over the *continuous* log ranges that cover the grid (C in [1e-2, 1e3],
    gamma in [1e-5, 1e-1]), 30 trials, against GridSearchCV over 6 x 5 log-spaced points of
    the same ranges (30 candidates): same data, same folds (``cv=5``, stratified, no
    shuffle), same scoring (accuracy)."""
    X, y, X_held, y_held = digits
    grid = GridSearchCV(
        SVC(), {"C": np.logspace(-2, 3, 6).tolist(), "gamma": np.logspace(-5, -1, 5).tolist()}
    ).fit(X, y)
    search = TuneSearchCV(
        SVC(),
        {"C": loguniform(1e-2, 1e3), "gamma": loguniform(1e-5, 1e-1)},
        n_trials=30,
        random_state=0,
        client=client,
    ).fit(X, y)

    assert len(search.cv_results_["params"]) <= 30
    assert search.best_score_ >= grid.best_score_ - 0.01
    assert search.best_score_ == search.cv_results_["mean_test_score"].max()
    assert search.best_params_ == search.cv_results_["params"][search.best_index_]

    assert public(grid) - {"param_grid"} <= public(search)
    fitted = {n for n in public(search) if n.endswith("_")}
    assert fitted - {n for n in public(grid) if n.endswith("_")} == EXTRA_ATTRIBUTES
    assert sorted(search.cv_results_) == sorted(grid.cv_results_)
    assert search.n_splits_ == grid.n_splits_ == 5
    assert search.multimetric_ is grid.multimetric_ is False
    assert type(search.scorer_) is type(grid.scorer_)
    assert search.refit_time_ > 0
    assert isinstance(search.cv_results_["param_C"], np.ma.MaskedArray)
    np.testing.assert_array_equal(search.classes_, grid.classes_)
    assert search.n_features_in_ == 64

    # delegation to the refitted best estimator
    best = search.best_estimator_
    assert best.get_params()["C"] == search.best_params_["C"]
    np.testing.assert_array_equal(search.predict(X_held), best.predict(X_held))
    np.testing.assert_array_equal(search.decision_function(X_held), best.decision_function(X_held))
    assert search.score(X_held, y_held) == best.score(X_held, y_held) > 0.95

    study = client.get_study(search.study_name_)
    assert study.id == search.study_id_
    assert re.fullmatch(r"TuneSearchCV-SVC-[0-9a-f]{32}", study.name)
    assert study.data.metrics[0]["name"] == "score"
    assert study.data.metrics[0]["goal"] == "maximize"
    assert study.trial_counts["completed"] == len(search.cv_results_["params"])
    assert study.best().values["score"] == pytest.approx(search.best_score_)
    trial = study.trial(int(search.trial_numbers_[search.best_index_]))
    assert trial.params == search.best_params_
    assert [m.step for m in trial.data.measurements] == [1, 2, 3, 4]  # folds 1..4; 5 completes


@pytest.mark.parametrize(
    "settings",
    [
        {"scoring": "accuracy", "return_train_score": True},
        {"scoring": ["accuracy", "f1_macro"], "refit": "f1_macro"},
        {"scoring": {"acc": "accuracy", "bal": "balanced_accuracy"}, "refit": "bal"},
    ],
    ids=["train-scores", "list", "dict"],
)
def test_cv_results_keys_match_grid_search(
    client: tuneforge.Client, small: Any, settings: dict[str, Any]
) -> None:
    X, y = small
    grid = GridSearchCV(SVC(gamma=1e-3), {"C": [1.0, 10.0]}, cv=3, **settings).fit(X, y)
    search = TuneSearchCV(
        SVC(gamma=1e-3), {"C": [1.0, 10.0]}, n_trials=2, cv=3, client=client, **settings
    ).fit(X, y)
    assert sorted(search.cv_results_) == sorted(grid.cv_results_)
    assert search.multimetric_ is grid.multimetric_
    assert set(search.scorer_) == set(grid.scorer_) if grid.multimetric_ else True
    by_c = {p["C"]: i for i, p in enumerate(search.cv_results_["params"])}
    for key in grid.cv_results_:
        if key.startswith(("split", "mean_test", "mean_train", "rank")):
            got = [search.cv_results_[key][by_c[p["C"]]] for p in grid.cv_results_["params"]]
            np.testing.assert_allclose(got, grid.cv_results_[key], err_msg=key)
    assert search.best_score_ == grid.best_score_  # best_params_ may differ on a tie
    metric = settings.get("refit", "accuracy")
    assert client.get_study(search.study_name_).data.metrics[0]["name"] == metric


def test_several_scorers_need_refit_to_name_the_objective(
    client: tuneforge.Client, small: Any
) -> None:
    search = TuneSearchCV(
        SVC(), {"C": [1.0]}, scoring=["accuracy", "f1_macro"], refit=False, client=client
    )
    with pytest.raises(ValueError, match=r"optimizes one metric.*refit"):
        search.fit(*small)


def test_clone_get_params_round_trip(client: tuneforge.Client) -> None:
    space = {"C": loguniform(1e-2, 1e3), "kernel": ["rbf", "linear"]}
    args: dict[str, Any] = {
        "n_trials": 7,
        "cv": StratifiedKFold(3),
        "scoring": "accuracy",
        "algorithm": "random",
        "early_stopping": dict(MEDIAN),
        "n_jobs": 2,
        "random_state": 3,
        "refit": False,
        "client": client,
        "study_name": "fixed",
        "verbose": 1,
        "pre_dispatch": "n_jobs",
        "error_score": 0.0,
        "return_train_score": True,
    }
    estimator = SVC(C=2.0)
    search = TuneSearchCV(estimator, space, **args)
    params = search.get_params(deep=False)
    assert params["estimator"] is estimator and params["param_space"] is space
    assert all(params[k] is v for k, v in args.items())  # stored unchanged

    copy = clone(search)
    again = copy.get_params(deep=False)
    assert again.keys() == params.keys()
    assert again["client"] is client  # shared, not deep-copied
    assert again["estimator"] is not estimator
    assert again["estimator"].get_params() == estimator.get_params()
    for key in params.keys() - {"client", "estimator"}:
        assert joblib.hash(again[key]) == joblib.hash(params[key]), key
    assert copy.get_params()["estimator__C"] == 2.0

    copy.set_params(n_trials=3, estimator__C=5.0)
    assert copy.n_trials == 3 and copy.estimator.C == 5.0 and search.n_trials == 7

    restored = pickle.loads(pickle.dumps(search))  # a connection cannot travel
    assert restored.client is None and restored.n_trials == 7 and search.client is client


def test_param_space_from_scipy_distributions_and_lists() -> None:
    space = search_space_of(
        {
            "C": loguniform(1e-3, 10),
            "tol": uniform(1e-4, 1e-2),
            "degree": randint(2, 5),
            "coef0": [0.0, 1, 2.5],
            "kernel": ["rbf", "poly"],
            "class_weight": [None, "balanced"],
            "max_iter": np.array([100, 200, 200]),
            "shrinking": {"type": "categorical", "values": [True, False]},
        }
    )
    assert space.parameters == [
        {"name": "C", "type": "float", "low": 1e-3, "high": 10.0, "scale": "log"},
        {"name": "tol", "type": "float", "low": 1e-4, "high": 1e-4 + 1e-2},
        {"name": "degree", "type": "int", "low": 2, "high": 4},
        {"name": "coef0", "type": "discrete", "values": [0.0, 1, 2.5]},
        {"name": "kernel", "type": "categorical", "values": ["rbf", "poly"]},
        {"name": "class_weight", "type": "categorical", "values": ["None", "'balanced'"]},
        {"name": "max_iter", "type": "discrete", "values": [100, 200]},
        {"name": "shrinking", "type": "categorical", "values": [True, False]},
    ]
    decoded = space.decode(
        {
            "C": 0.5,
            "tol": 0.001,
            "degree": 3,
            "coef0": 1.0,
            "kernel": "poly",
            "class_weight": "None",
            "max_iter": 200.0,
            "shrinking": False,
        }
    )
    assert decoded == {
        "C": 0.5,
        "tol": 0.001,
        "degree": 3,
        "coef0": 1,
        "kernel": "poly",
        "class_weight": None,
        "max_iter": 200,
        "shrinking": False,
    }
    assert type(decoded["coef0"]) is int and type(decoded["max_iter"]) is int

    assert space.size is None  # C and tol are continuous
    assert search_space_of({"a": randint(2, 5), "b": ["x", "y"], "c": [1, 2, 3]}).size == 18

    api = [{"name": "C", "type": "float", "low": 0.1, "high": 10, "scale": "log"}]
    assert search_space_of(api).parameters == api


@pytest.mark.parametrize(
    ("space", "match"),
    [
        ({"C": norm(0, 1)}, r"parameter 'C': unsupported distribution scipy.stats.norm"),
        ({"C": loguniform(1, 10, loc=1)}, r"parameter 'C': loguniform with a loc shift"),
        ({"C": 1.0}, r"parameter 'C': unsupported value 1.0"),
        ({"kernel": "rbf"}, r"parameter 'kernel': unsupported value 'rbf'"),
        ({"C": []}, r"parameter 'C': the list of values is empty"),
        ({"C": {"low": 1}}, r"parameter 'C': a dict value must be a tuneforge parameter"),
        ([{"C": [1, 2]}], r"tuneforge parameter dicts with 'name' and 'type'"),
        ({}, "param_space is empty"),
    ],
)
def test_bad_param_space_is_a_clear_value_error(space: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        search_space_of(space)


def test_fit_with_a_mixed_space_sets_real_values(client: tuneforge.Client, small: Any) -> None:
    X, y = small
    space = {
        "C": loguniform(1e-1, 1e2),
        "degree": randint(2, 4),
        "kernel": ["rbf", "poly"],
        "class_weight": [None, "balanced"],
        "shrinking": [True, False],
    }
    search = TuneSearchCV(
        SVC(gamma=1e-3),
        space,
        n_trials=6,
        cv=3,
        algorithm="random",
        random_state=1,
        client=client,
    ).fit(X, y)
    params = search.cv_results_["params"]
    assert len(params) == 6
    for p in params:
        assert isinstance(p["C"], float) and 0.1 <= p["C"] <= 100
        assert type(p["degree"]) is int and p["degree"] in (2, 3)
        assert p["kernel"] in ("rbf", "poly") and p["class_weight"] in (None, "balanced")
        assert type(p["shrinking"]) is bool
    assert list(search.cv_results_["param_class_weight"]) == [p["class_weight"] for p in params]
    assert search.best_estimator_.class_weight == search.best_params_["class_weight"]


def test_median_rule_prunes_bad_candidates_after_their_first_folds(
    client: tuneforge.Client, small: Any
) -> None:
    """gamma above ~1e-2 is chance level on digits (accuracy ~0.1) while gamma near 1e-3
    scores ~0.97: the median rule stops the bad ones after one or two folds."""
    X, y = small
    cv = StratifiedKFold(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search = TuneSearchCV(
            SVC(C=10.0),
            {"gamma": loguniform(1e-4, 1.0)},
            n_trials=16,
            cv=cv,
            algorithm="random",
            early_stopping=MEDIAN,
            random_state=0,
            client=client,
        ).fit(X, y)
    assert not [w for w in caught if "non-finite" in str(w.message)]  # pruning is not an error
    results = search.cv_results_
    pruned = search.pruned_
    assert len(pruned) == 16 and 1 <= pruned.sum() < 16
    splits = np.column_stack([results[f"split{k}_test_score"] for k in range(5)])
    done = (~np.isnan(splits)).sum(axis=1)
    assert (done[pruned] < 5).all() and (done[~pruned] == 5).all()
    assert done.sum() < 16 * 5  # folds were skipped
    assert all(np.isnan(splits[i, done[i] :]).all() for i in range(16))  # NaN after the stop
    assert np.isnan(results["mean_test_score"][pruned]).all()
    assert (results["rank_test_score"][pruned] == results["rank_test_score"].max()).all()
    assert (results["rank_test_score"][~pruned] < results["rank_test_score"].max()).all()
    assert np.isfinite(results["mean_fit_time"]).all()
    assert np.isfinite(results["std_score_time"]).all()
    assert not pruned[search.best_index_] and search.best_score_ > 0.9
    # the pruned ones were bad where they stopped
    partial = np.array([np.nanmean(row) for row in splits])
    assert partial[pruned].max() < np.median(partial[~pruned])

    study = client.get_study(search.study_name_)
    trials = {t.number: t for t in study.trials()}
    states = [trials[int(n)].state for n in search.trial_numbers_]
    assert states == ["pruned" if p else "completed" for p in pruned]
    for i in np.flatnonzero(pruned):  # completed with the running mean of the folds it ran
        trial = study.trial(int(search.trial_numbers_[i]))
        assert trial.data.measurements[-1].step == done[i]
        assert trial.values["score"] == pytest.approx(partial[i])


def test_n_jobs_two_evaluates_candidates_in_parallel(client: tuneforge.Client, small: Any) -> None:
    X, y = small
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = TuneSearchCV(
        SVC(),
        {"C": loguniform(1e-1, 1e2), "gamma": loguniform(1e-4, 1.0)},
        n_trials=8,
        cv=cv,
        n_jobs=2,
        early_stopping=MEDIAN,
        algorithm="random",
        random_state=0,
        client=client,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 8
    assert len(set(search.trial_numbers_)) == 8
    counts = client.get_study(search.study_name_).refresh().trial_counts
    assert counts["completed"] + counts["pruned"] == 8 and counts["active"] == 0
    assert counts["pruned"] == search.pruned_.sum()
    # each row holds its own candidate's folds, in order
    for i in np.flatnonzero(~search.pruned_)[:3]:
        model = SVC().set_params(**search.cv_results_["params"][i])
        expected = cross_val_score(model, X, y, cv=cv)
        got = [search.cv_results_[f"split{k}_test_score"][i] for k in range(3)]
        np.testing.assert_allclose(got, expected)


class FailsWhenNegative(ClassifierMixin, BaseEstimator):
    """Predicts the majority class; ``fit`` raises for a negative ``c``."""

    def __init__(self, c: float = 1.0) -> None:
        self.c = c

    def fit(self, X: Any, y: Any) -> FailsWhenNegative:
        if self.c < 0:
            raise ValueError("c must be >= 0")
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.majority_)


def test_n_trials_is_capped_at_the_size_of_a_finite_space(
    client: tuneforge.Client, small: Any
) -> None:
    space = {"C": [1.0, 10.0], "kernel": ["rbf", "linear"]}
    search = TuneSearchCV(SVC(), space, n_trials=10, cv=3, algorithm="grid", client=client)
    with pytest.warns(UserWarning, match="space of parameters 4 is smaller than n_trials=10"):
        search.fit(*small)
    assert sorted((p["C"], p["kernel"]) for p in search.cv_results_["params"]) == [
        (1.0, "linear"),
        (1.0, "rbf"),
        (10.0, "linear"),
        (10.0, "rbf"),
    ]
    assert client.get_study(search.study_name_).data.max_trials == 4
    assert search.n_trials == 10  # the parameter itself is left alone


def test_failed_fits_are_infeasible_and_rank_last(client: tuneforge.Client, small: Any) -> None:
    X, y = small
    search = TuneSearchCV(
        FailsWhenNegative(), {"c": [-1.0, 1.0]}, n_trials=2, cv=3, algorithm="grid", client=client
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "One or more of the test scores are non-finite")
        with pytest.warns(FitFailedWarning, match="c must be >= 0"):
            search.fit(X, y)  # GridSearchCV warns the same two ways
    failed = [i for i, p in enumerate(search.cv_results_["params"]) if p["c"] < 0]
    assert len(failed) == 1 and np.isnan(search.cv_results_["mean_test_score"][failed[0]])
    assert search.cv_results_["rank_test_score"][failed[0]] == 2 and not search.pruned_.any()
    states = {t.params["c"]: t for t in client.get_study(search.study_name_).trials()}
    assert states[-1.0].state == "infeasible" and "c must be >= 0" in states[-1.0].data.reason
    assert states[1.0].state == "completed"


def test_error_score_raise_fails_the_running_trial(client: tuneforge.Client, small: Any) -> None:
    search = TuneSearchCV(
        FailsWhenNegative(), {"c": [-1.0]}, n_trials=1, cv=3, error_score="raise", client=client
    )
    with pytest.raises(ValueError, match="c must be >= 0"):
        search.fit(*small)
    counts = client.get_study(search.study_name_).refresh().trial_counts
    assert counts["failed"] == 1 and counts["active"] == 0


def test_no_client_uses_an_embedded_server_and_closes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small: Any
) -> None:
    closed: list[bool] = []  # whether each closed client ran an embedded server

    class Recording(tuneforge.Client):
        def close(self) -> None:
            closed.append(self.embedded)
            super().close()

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNEFORGE_URL", raising=False)
    monkeypatch.setattr(tsk, "Client", Recording)
    search = TuneSearchCV(SVC(), {"C": [1.0, 10.0]}, n_trials=2, cv=3).fit(*small)
    assert closed == [True] and search.client is None
    with tuneforge.local(tmp_path / "tuneforge.db") as client:
        assert client.get_study(search.study_name_).trial_counts["completed"] == 2
