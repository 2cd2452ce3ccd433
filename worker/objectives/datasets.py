"""Datasets for managed sklearn objectives, loaded once per worker process.

A csv/parquet table goes through the same checks the server ran on a sample at
creation (:mod:`tuneforge.core.datasets`), here on every row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ...core.datasets import check_table, describe_frame, read_error
from ...core.policy import ObjectivePolicy

#: The operator's defaults: no data files, no URLs.
STRICT = ObjectivePolicy()

#: The objective's fields the data checks depend on (part of the cache key).
_CHECKED = ("estimator", "preprocessing", "cv")


@dataclass(frozen=True)
class Dataset:
    """Features, target and optional groups, row-aligned."""

    X: Any
    y: np.ndarray
    groups: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return len(self.y)


def load_dataset(
    spec: Mapping[str, Any],
    objective: Mapping[str, Any] | None = None,
    policy: ObjectivePolicy = STRICT,
) -> Dataset:
    """The dataset a study names, checked like the server checks it at creation
    (against ``objective``'s estimator and preprocessing when given); cached per process.

    A csv/parquet path must lie under one of ``policy``'s data roots once symlinks
    are followed (relative paths start at the first root); a URL needs an allowed
    scheme. Nothing is read otherwise.
    """
    checks = {k: objective[k] for k in _CHECKED if k in objective} if objective else {}
    request: dict[str, Any] = {"dataset": dict(spec), "checks": checks}
    if spec["source"] != "sklearn":
        request["location"] = policy.resolve_data_path(spec["path"], os.path.realpath)
    return _load(json.dumps(request, sort_keys=True))


@lru_cache(maxsize=8)
def _load(key: str) -> Dataset:
    request = json.loads(key)
    spec = request["dataset"]
    if spec["source"] == "sklearn":
        return _bundled(spec["name"])
    return _tabular(spec, request["location"], request["checks"])


def _bundled(name: str) -> Dataset:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    X, y = loader(return_X_y=True)
    return Dataset(np.asarray(X), np.asarray(y))


def _tabular(spec: Mapping[str, Any], location: str, checks: Mapping[str, Any]) -> Dataset:
    import pandas as pd

    try:
        frame = pd.read_csv(location) if spec["source"] == "csv" else pd.read_parquet(location)
    except Exception as exc:
        raise read_error(exc, spec["source"], spec["path"]) from None
    features = check_table(
        spec,
        describe_frame(frame),
        estimator=checks.get("estimator"),
        preprocessing=checks.get("preprocessing", ()),
        n_splits=checks.get("cv", {}).get("n_splits"),
    )
    groups = frame[spec["groups"]].to_numpy() if spec.get("groups") else None
    return Dataset(frame[features].to_numpy(), frame[spec["target"]].to_numpy(), groups)
