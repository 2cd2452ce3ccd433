"""The held-out test split and the cross-validation splitters a managed objective names (docs/api.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn import model_selection as ms

from .datasets import Dataset

Split = tuple[np.ndarray, np.ndarray]


def make_splitter(cv: Mapping[str, Any]) -> Any:
    """The scikit-learn splitter a study's ``objective.cv`` names."""
    kind = cv["type"]
    seed = cv.get("seed", 0)
    if kind == "kfold":
        shuffle = cv.get("shuffle", True)
        return ms.KFold(cv["n_splits"], shuffle=shuffle, random_state=seed if shuffle else None)
    if kind == "stratified_kfold":
        shuffle = cv.get("shuffle", True)
        return ms.StratifiedKFold(
            cv["n_splits"], shuffle=shuffle, random_state=seed if shuffle else None
        )
    if kind == "repeated_kfold":
        return ms.RepeatedKFold(
            n_splits=cv["n_splits"], n_repeats=cv["n_repeats"], random_state=seed
        )
    if kind == "repeated_stratified_kfold":
        return ms.RepeatedStratifiedKFold(
            n_splits=cv["n_splits"], n_repeats=cv["n_repeats"], random_state=seed
        )
    if kind == "group_kfold":
        return ms.GroupKFold(cv["n_splits"])
    if kind == "time_series":
        return ms.TimeSeriesSplit(
            cv["n_splits"], gap=cv.get("gap", 0), max_train_size=cv.get("max_train_size")
        )
    if kind == "leave_one_out":
        return ms.LeaveOneOut()
    if kind == "shuffle_split":
        return ms.ShuffleSplit(cv["n_splits"], test_size=cv["test_size"], random_state=seed)
    raise ValueError(f"unknown cv type {kind!r}")


def holdout_split(
    data: Dataset, test_size: float | None, seed: int, *, stratify: bool, ordered: bool
) -> Split:
    """Row indices of the tuning part and of the held-out test part.

    Time-ordered data (``ordered``) keeps its last rows as the test part; other
    data is split at random with ``seed``, stratified for classifiers.
    """
    n = data.n_samples
    everything = np.arange(n)
    if not test_size:
        return everything, np.array([], dtype=int)
    if ordered:
        cut = n - max(1, round(n * test_size))
        return everything[:cut], everything[cut:]
    tune, test = ms.train_test_split(
        everything, test_size=test_size, random_state=seed, stratify=data.y if stratify else None
    )
    return np.sort(tune), np.sort(test)


def outer_fold_split(data: Dataset, outer: Mapping[str, Any], *, stratify: bool) -> Split:
    """Nested CV: the rows of outer fold ``index`` are held out; the rest are tuned on."""
    kind = ms.StratifiedKFold if stratify else ms.KFold
    splitter = kind(outer["n_splits"], shuffle=True, random_state=outer["seed"])
    folds = list(splitter.split(np.zeros(data.n_samples), data.y if stratify else None))
    train, test = folds[outer["index"]]
    return np.sort(train), np.sort(test)


def cv_splits(cv: Mapping[str, Any], data: Dataset, rows: np.ndarray) -> list[Split]:
    """The folds over ``rows`` (the tuning part), as indices into the full dataset."""
    from .pipeline import rows as take

    splitter = make_splitter(cv)
    X = take(data.X, rows)
    y = data.y[rows]
    groups = data.groups[rows] if data.groups is not None else None
    return [(rows[train], rows[test]) for train, test in splitter.split(X, y, groups)]
