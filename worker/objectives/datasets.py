"""Datasets for managed sklearn objectives, loaded once per worker process.

A csv/parquet table goes through the same checks the server ran on a sample at
creation (:mod:`tuneforge.core.datasets`), here on every row. An uploaded
dataset is read from the worker's local copy (``dataset.cached_path``, see
:mod:`.fetch`). For a pipeline, and for every uploaded dataset, the table keeps
its columns (a DataFrame with the dtypes of
:func:`tuneforge.core.tables.normalized`), so CSV and Parquet copies of the same
data train alike; otherwise the features become one numeric array.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ...core.datasets import FIELD, ColumnKind, check_table, describe_frame, read_error
from ...core.errors import InvalidSpec
from ...core.policy import ObjectivePolicy
from ...core.tables import TableInfo, normalized, profile

#: The operator's defaults: no data files, no URLs.
STRICT = ObjectivePolicy()

#: The objective's fields the data checks depend on (part of the cache key).
_CHECKED = ("estimator", "preprocessing", "cv", "pipeline")


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
    if spec["source"] == "uploaded":
        if not spec.get("cached_path"):
            raise InvalidSpec("the worker has no local copy of the dataset", field=FIELD)
        request["location"] = spec["cached_path"]
    elif spec["source"] != "sklearn":
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

    fmt = spec.get("format", "csv") if spec["source"] == "uploaded" else spec["source"]
    try:
        frame = pd.read_csv(location) if fmt == "csv" else pd.read_parquet(location)
    except Exception as exc:
        raise read_error(exc, fmt, spec.get("path", spec.get("name", "the dataset"))) from None
    columns = checks.get("pipeline") is not None or spec["source"] == "uploaded"
    table = profile([frame]) if columns else describe_frame(frame)
    pipeline = checks.get("pipeline")
    from ...core.pipelines import final_estimator

    features = check_table(
        spec,
        table,
        estimator=final_estimator(pipeline) if pipeline else checks.get("estimator"),
        preprocessing=checks.get("preprocessing", ()),
        n_splits=checks.get("cv", {}).get("n_splits"),
        pipeline=pipeline,
    )
    groups = frame[spec["groups"]].to_numpy() if spec.get("groups") else None
    if not columns:
        return Dataset(frame[features].to_numpy(), frame[spec["target"]].to_numpy(), groups)
    frame = normalized(frame, table)
    X = frame[features] if pipeline else frame[features].to_numpy(dtype=float)
    return Dataset(X, _target(frame[spec["target"]], table, spec["target"]), groups)


def _target(series: Any, table: TableInfo, name: str) -> np.ndarray:
    """The target's values: whole numbers as int64 (class labels), other numbers as
    float64, text as strings."""
    column = table.column(name)
    if column is not None and column.kind == ColumnKind.NUMERIC and column.integral:
        return series.to_numpy(dtype=np.int64)
    return series.to_numpy()
