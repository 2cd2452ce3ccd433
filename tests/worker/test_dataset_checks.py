"""The workers load csv/parquet data through the same checks the server runs at creation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tuneforge.core.errors import InvalidSpec
from tuneforge.core.policy import ObjectivePolicy
from tuneforge.worker.objective import ConfigurationError, evaluate
from tuneforge.worker.objectives.datasets import load_dataset
from tuneforge.worker.objectives.sklearn_cv import cross_validate


class Trial:
    params: dict[str, Any] = {"C": 1.0}

    def report(self, step: int, values: Any = None, /) -> bool:
        return False


def write(tmp_path: Path, name: str = "d.csv", extra: str = "") -> str:
    rng = np.random.default_rng(1)
    n = 80
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "flag": rng.integers(0, 2, size=n).astype(bool),
            "label": rng.integers(0, 2, size=n),
        }
    )
    path = tmp_path / name
    frame.to_csv(path, index=False)
    if extra:
        with path.open("a") as f:
            f.write(extra)
    return str(path)


def policy(root: Path) -> ObjectivePolicy:
    """A worker whose operator allows files under ``root``."""
    return ObjectivePolicy(data_roots=(str(root),))


def objective(path: str, **dataset: Any) -> dict[str, Any]:
    return {
        "kind": "sklearn",
        "estimator": "sklearn.svm.SVC",
        "fixed_params": {},
        "dataset": {"source": "csv", "path": path, "target": "label", **dataset},
        "cv": {"type": "kfold", "n_splits": 3, "shuffle": True, "seed": 0},
        "preprocessing": [],
        "seed": 0,
        "test_size": None,
        "outer_fold": None,
        "scoring": None,
    }


def test_numeric_and_boolean_features_train(tmp_path: Path) -> None:
    obj = objective(write(tmp_path))
    assert load_dataset(obj["dataset"], obj, policy(tmp_path)).X.shape == (80, 2)
    out = cross_validate(obj, {"C": 1.0}, "accuracy", Trial(), policy=policy(tmp_path))
    assert 0.0 <= out.score <= 1.0 and len(out.fold_scores) == 3


def test_a_text_value_anywhere_in_a_feature_is_found_on_the_whole_file(tmp_path: Path) -> None:
    obj = objective(write(tmp_path, "late.csv", extra="oops,True,1\n"))
    with pytest.raises(InvalidSpec) as err:
        load_dataset(obj["dataset"], obj, policy(tmp_path))
    assert err.value.field == "objective.dataset.features" and "'a'" in err.value.message
    assert "oops" not in err.value.message


def test_data_errors_become_one_line_configuration_errors(tmp_path: Path) -> None:
    obj = objective(str(tmp_path / "gone.csv"))
    with pytest.raises(ConfigurationError, match=r"^objective\.dataset\.path: .*no such file"):
        evaluate(Trial(), obj, "accuracy", policy(tmp_path))
    obj = objective(write(tmp_path), target="Label")
    with pytest.raises(ConfigurationError, match=r"^objective\.dataset\.target: no column"):
        evaluate(Trial(), obj, "accuracy", policy(tmp_path))


def test_a_worker_refuses_what_its_own_policy_does_not_allow(tmp_path: Path) -> None:
    """The worker checks the spec again: a file outside its data roots is never read,
    and the reason says nothing of the file (same text whether it exists or not)."""
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    secret = write(outside, "secret.csv")
    reasons = []
    for path in (secret, str(outside / "missing.csv"), str(inside / ".." / "out" / "secret.csv")):
        with pytest.raises(ConfigurationError) as err:
            evaluate(Trial(), objective(path), "accuracy", policy(inside))
        reasons.append(str(err.value).replace(path, "<path>"))
    assert reasons[0] == reasons[1] and reasons[0].startswith("objective.dataset.path: ")
    assert "label" not in reasons[0] and "secret" not in reasons[0]
    (inside / "link.csv").symlink_to(secret)
    with pytest.raises(ConfigurationError, match="data roots"):
        evaluate(Trial(), objective("link.csv"), "accuracy", policy(inside))
    with pytest.raises(ConfigurationError, match=r"objective\.callable"):
        python = {"kind": "python", "callable": "os:system", "options": {}}
        evaluate(Trial(), python, "accuracy", policy(inside))
    with pytest.raises(ConfigurationError, match=r"objective\.fixed_params\.memory"):
        obj = {**objective(write(inside)), "fixed_params": {"memory": str(outside)}}
        evaluate(Trial(), obj, "accuracy", policy(inside))
    assert sorted(p.name for p in outside.iterdir()) == ["secret.csv"]


def test_a_relative_path_starts_at_the_first_data_root(tmp_path: Path) -> None:
    write(tmp_path, "rel.csv")
    obj = objective("rel.csv")
    assert load_dataset(obj["dataset"], obj, policy(tmp_path)).X.shape == (80, 2)
