"""The workers load csv/parquet data through the same checks the server runs at creation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tuneforge.core.errors import InvalidSpec
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
    assert load_dataset(obj["dataset"], obj).X.shape == (80, 2)
    out = cross_validate(obj, {"C": 1.0}, "accuracy", Trial())
    assert 0.0 <= out.score <= 1.0 and len(out.fold_scores) == 3


def test_a_text_value_anywhere_in_a_feature_is_found_on_the_whole_file(tmp_path: Path) -> None:
    obj = objective(write(tmp_path, "late.csv", extra="oops,True,1\n"))
    with pytest.raises(InvalidSpec) as err:
        load_dataset(obj["dataset"], obj)
    assert err.value.field == "objective.dataset.features" and "'a'" in err.value.message
    assert "oops" not in err.value.message


def test_data_errors_become_one_line_configuration_errors(tmp_path: Path) -> None:
    obj = objective(str(tmp_path / "gone.csv"))
    with pytest.raises(ConfigurationError, match=r"^objective\.dataset\.path: .*no such file"):
        evaluate(Trial(), obj, "accuracy")
    obj = objective(write(tmp_path), target="Label")
    with pytest.raises(ConfigurationError, match=r"^objective\.dataset\.target: no column"):
        evaluate(Trial(), obj, "accuracy")
