"""``TuneSearchCV(resource=...)``: rung-based training with asha, hyperband and bohb studies,
on an embedded server (real app, real SQLite database, no mocks).

The estimators here are scikit-learn's own with a ledger: each records the training it
really does (trees added, ``partial_fit`` passes, rows fitted on), keyed by the candidate's
parameter value. A candidate that pauses and is promoted must have trained each fold
exactly to its last budget: going on from its checkpoint, never starting over.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import joblib
import numpy as np
import pytest
from scipy.stats import loguniform, randint
from sklearn.datasets import load_digits
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tuneforge
from tuneforge.sklearn import TuneSearchCV

#: (class name, key param value, training rows, units trained) per fit / partial_fit call.
LEDGER: list[tuple[str, float, int, int]] = []
_LOCK = threading.Lock()


def record(kind: str, key: float, rows: int, units: int) -> None:
    with _LOCK:
        LEDGER.append((kind, float(key), rows, units))


class LedgerForest(RandomForestClassifier):
    """Records the trees each ``fit`` adds (warm_start keeps the earlier ones)."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LedgerForest:
        before = len(getattr(self, "estimators_", []))
        super().fit(X, y, sample_weight=sample_weight)
        record("forest", self.max_features, len(X), len(self.estimators_) - before)
        return self


class LedgerBoosting(GradientBoostingClassifier):
    """Records the boosting stages each ``fit`` adds."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None, monitor: Any = None) -> Any:
        before = len(getattr(self, "estimators_", []))
        super().fit(X, y, sample_weight=sample_weight, monitor=monitor)
        record("boosting", self.learning_rate, len(X), len(self.estimators_) - before)
        return self


class LedgerSGD(SGDClassifier):
    """Records each ``partial_fit`` pass and each full ``fit``."""

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> Any:
        record("sgd-pass", self.alpha, len(X), 1)
        return super().partial_fit(X, y, classes=classes, sample_weight=sample_weight)

    def fit(self, X: Any, y: Any, **kwargs: Any) -> Any:
        record("sgd-fit", self.alpha, len(X), 1)
        return super().fit(X, y, **kwargs)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuneforge.Client]:
    with tuneforge.local(tmp_path_factory.mktemp("rungs") / "t.db") as c:
        yield c


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    order = np.random.RandomState(0).permutation(len(X))[:240]
    return X[order], y[order]


@pytest.fixture(autouse=True)
def ledger() -> Iterator[list[tuple[str, float, int, int]]]:
    LEDGER.clear()
    yield LEDGER
    LEDGER.clear()


def trained(kind: str, n_rows: int) -> dict[float, int]:
    """Units trained per candidate during the search (the refit on all rows left out)."""
    out: dict[float, int] = defaultdict(int)
    for k, key, rows, units in LEDGER:
        if k == kind and rows < n_rows:
            out[key] += units
    return dict(out)


def check_study(client: tuneforge.Client, search: TuneSearchCV) -> dict[int, Any]:
    """The study ended, every trial finished, some were resumed, one trained to the max;
    the search's rows are its trials with the budget each reached."""
    study = client.get_study(search.study_id_)
    assert study.state == "completed"
    trials = {t.number: t for t in study.trials()}
    assert {t.state for t in trials.values()} <= {"completed", "pruned"}
    assert sorted(search.trial_numbers_) == sorted(trials)
    results = search.cv_results_
    for number, reached in zip(search.trial_numbers_, results["n_resources"], strict=True):
        steps = [m.step for m in trials[number].data.measurements]
        assert steps == [b for b in search.n_resources_ if b <= reached], (number, steps)
    assert any(t.data.resume_from_step is not None for t in trials.values())
    assert (search.pruned_ == (results["n_resources"] < search.max_resources_)).all()
    best = search.best_index_
    assert results["n_resources"][best] == search.max_resources_
    assert results["rank_test_score"][best] == 1
    top = results["mean_test_score"][results["n_resources"] == search.max_resources_].max()
    assert search.best_score_ == top
    return trials


def test_n_estimators_with_warm_start_resumes_the_fold_forests(
    client: tuneforge.Client, digits: Any
) -> None:
    X, y = digits
    search = TuneSearchCV(
        LedgerForest(random_state=0),
        {"max_features": loguniform(0.02, 1.0), "max_depth": randint(2, 10)},
        resource="n_estimators",
        max_resources=27,
        early_stopping={"rule": "asha", "reduction_factor": 3},
        n_trials=9,
        cv=3,
        random_state=1,
        client=client,
    ).fit(X, y)
    assert search.n_resources_ == [1, 3, 9, 27] and search.min_resources_ == 1
    check_study(client, search)
    results = search.cv_results_
    trees = trained("forest", len(X))
    for params, reached in zip(results["params"], results["n_resources"], strict=True):
        # every fold grew to exactly its last budget: resumed forests kept their trees
        assert trees[float(params["max_features"])] == 3 * reached
    assert sum(trees.values()) < 9 * 27 * 3 / 2
    assert len(search.best_estimator_.estimators_) == 27  # refit on all rows, to the max
    assert search.best_estimator_.score(X, y) > 0.9


def test_max_iter_with_partial_fit_resumes_the_fold_models(
    client: tuneforge.Client, digits: Any
) -> None:
    X, y = digits
    search = TuneSearchCV(
        LedgerSGD(random_state=0),
        {"alpha": loguniform(1e-6, 1.0), "loss": ["hinge", "log_loss", "modified_huber"]},
        resource="max_iter",
        min_resources=1,
        max_resources=9,
        early_stopping="asha",
        n_trials=9,
        cv=3,
        random_state=3,
        client=client,
    ).fit(X, y)
    assert search.n_resources_ == [1, 3, 9]
    check_study(client, search)
    results = search.cv_results_
    passes = trained("sgd-pass", len(X))
    assert not trained("sgd-fit", len(X))  # never refitted from scratch
    for params, reached in zip(results["params"], results["n_resources"], strict=True):
        assert passes[float(params["alpha"])] == 3 * reached
    # the refit: 9 passes over every row
    assert sum(u for k, _, rows, u in LEDGER if k == "sgd-pass" and rows == len(X)) == 9


def test_n_samples_trains_on_growing_shares_of_each_fold(
    client: tuneforge.Client, digits: Any
) -> None:
    X, y = digits
    search = TuneSearchCV(
        LedgerSGD(random_state=0, max_iter=20, tol=None),
        {"alpha": loguniform(1e-5, 1.0)},
        resource="n_samples",
        early_stopping={"rule": "hyperband", "reduction_factor": 2},
        n_trials=10,
        cv=3,
        random_state=0,
        client=client,
    ).fit(X, y)
    # min_resources "smallest": 3 folds * 2 * 10 classes, as HalvingRandomSearchCV
    assert search.min_resources_ == 60 and search.max_resources_ == len(X)
    assert search.n_resources_ == [60, 120, 240]
    check_study(client, search)
    fits: dict[float, list[int]] = defaultdict(list)
    for kind, key, rows, _ in LEDGER:
        if kind == "sgd-fit" and rows < len(X):
            fits[key].append(rows)
    for params, reached in zip(
        search.cv_results_["params"], search.cv_results_["n_resources"], strict=True
    ):
        # one fit per fold and budget, on the fold's share of rows (160 training rows a fold)
        want = [math.ceil(160 * b / 240) for b in search.n_resources_ if b <= reached]
        assert sorted(fits[float(params["alpha"])]) == sorted(want * 3)


def test_bohb_with_parallel_candidates_and_a_pipeline(
    client: tuneforge.Client, digits: Any
) -> None:
    X, y = digits
    pipe = make_pipeline(StandardScaler(), LedgerBoosting(random_state=0, max_depth=2))
    search = TuneSearchCV(
        pipe,
        {"ledgerboosting__learning_rate": loguniform(0.01, 1.0)},
        resource="ledgerboosting__n_estimators",
        min_resources=2,
        max_resources=18,
        early_stopping="bohb",
        algorithm="tpe",
        n_trials=8,
        n_jobs=2,
        cv=3,
        random_state=0,
        client=client,
    )
    with joblib.parallel_backend("threading"):
        search.fit(X, y)
    assert search.n_resources_ == [2, 6, 18]
    check_study(client, search)
    stages = trained("boosting", len(X))
    results = search.cv_results_
    for params, reached in zip(results["params"], results["n_resources"], strict=True):
        assert stages[float(params["ledgerboosting__learning_rate"])] == 3 * reached


@pytest.mark.parametrize(
    ("estimator", "options", "message"),
    [
        (
            RandomForestClassifier(),
            {"resource": "max_depth", "max_resources": 9},
            "is also in param_space",
        ),
        (RandomForestClassifier(), {"resource": "epochs", "max_resources": 9}, "not a parameter"),
        (RandomForestClassifier(), {"resource": "n_estimators"}, "max_resources='auto'"),
        (
            RandomForestClassifier(),
            {"resource": "n_estimators", "min_resources": 9, "max_resources": 9},
            "below max_resources",
        ),
        (
            make_pipeline(StandardScaler(), SGDClassifier()),
            {"resource": "sgdclassifier__max_iter", "max_resources": 9},
            "cannot partial_fit",
        ),
        (RandomForestClassifier(), {"resource": "n_samples", "max_resources": 10**6}, "above"),
    ],
)
def test_bad_resources_are_refused_before_any_study(
    client: tuneforge.Client, digits: Any, estimator: Any, options: Any, message: str
) -> None:
    X, y = digits
    before = len(client.list_studies())
    search = TuneSearchCV(estimator, {"max_depth": [2, 3]}, n_trials=2, client=client, **options)
    with pytest.raises(ValueError, match=message):
        search.fit(X, y)
    assert len(client.list_studies()) == before


def test_min_and_max_resources_are_validated_like_sklearn(digits: Any) -> None:
    X, y = digits
    for bad in ({"min_resources": 0}, {"max_resources": "all"}, {"min_resources": "exhaust"}):
        search = TuneSearchCV(RandomForestClassifier(), {"max_depth": [2]}, **bad)
        with pytest.raises(ValueError, match="_resources"):
            search.fit(X, y)
