"""Datasets for managed sklearn objectives, loaded once per worker process."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ...core.errors import InvalidSpec


@dataclass(frozen=True)
class Dataset:
    """Features, target and optional groups, row-aligned."""

    X: Any
    y: np.ndarray
    groups: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return len(self.y)


def load_dataset(spec: Mapping[str, Any]) -> Dataset:
    """The dataset a study names; cached per process by its spec."""
    return _load(json.dumps(dict(spec), sort_keys=True))


@lru_cache(maxsize=8)
def _load(key: str) -> Dataset:
    spec = json.loads(key)
    if spec["source"] == "sklearn":
        return _bundled(spec["name"])
    return _tabular(spec)


def _bundled(name: str) -> Dataset:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    X, y = loader(return_X_y=True)
    return Dataset(np.asarray(X), np.asarray(y))


def _tabular(spec: Mapping[str, Any]) -> Dataset:
    import pandas as pd

    path = spec["path"]
    try:
        frame = pd.read_csv(path) if spec["source"] == "csv" else pd.read_parquet(path)
    except ImportError as exc:
        raise InvalidSpec(
            f"cannot read {spec['source']} here: {exc}", field="objective.dataset"
        ) from exc
    except (OSError, ValueError) as exc:
        raise InvalidSpec(f"cannot read {path!r}: {exc}", field="objective.dataset.path") from exc
    for key in ("target", "groups"):
        column = spec.get(key)
        if column is not None and column not in frame.columns:
            raise InvalidSpec(f"no column {column!r} in {path!r}", field=f"objective.dataset.{key}")
    dropped = [c for c in (spec["target"], spec.get("groups")) if c]
    features = spec.get("features") or [c for c in frame.columns if c not in dropped]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise InvalidSpec(f"no columns {missing} in {path!r}", field="objective.dataset.features")
    groups = frame[spec["groups"]].to_numpy() if spec.get("groups") else None
    return Dataset(frame[features].to_numpy(), frame[spec["target"]].to_numpy(), groups)
