"""The data checks shared by the server (on a sample at creation) and the workers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from tuneforge.core.datasets import (
    ColumnInfo,
    ColumnKind,
    EstimatorTraits,
    TableInfo,
    check_objective_table,
    check_table,
    describe_frame,
    read_error,
)
from tuneforge.core.errors import InvalidSpec

N, B, C, D = ColumnKind.NUMERIC, ColumnKind.BOOLEAN, ColumnKind.CATEGORICAL, ColumnKind.DATETIME


def table(*columns: ColumnInfo, rows: int = 100, exact: bool = True) -> TableInfo:
    return TableInfo(tuple(columns), rows, exact)


def col(name: str, kind: ColumnKind, missing: int = 0, integral: bool = True) -> ColumnInfo:
    return ColumnInfo(name, kind, missing, integral)


BASIC = table(col("x1", N, integral=False), col("x2", N), col("y", N), col("site", N))


def objective(estimator: str = "sklearn.svm.SVC", **dataset: Any) -> dict[str, Any]:
    return {
        "kind": "sklearn",
        "estimator": estimator,
        "dataset": {"source": "csv", "path": "d.csv", "target": "y", **dataset},
        "cv": {"type": "kfold", "n_splits": 5},
        "preprocessing": [],
    }


def field_of(obj: dict[str, Any], info: TableInfo) -> tuple[str | None, str]:
    with pytest.raises(InvalidSpec) as err:
        check_objective_table(obj, info)
    return err.value.field, err.value.message


def test_features_default_to_every_other_column() -> None:
    assert check_objective_table(objective(groups="site"), BASIC) == ["x1", "x2"]
    assert check_objective_table(objective(), BASIC) == ["x1", "x2", "site"]
    assert check_objective_table(objective(features=["x2"]), BASIC) == ["x2"]


@pytest.mark.parametrize(
    ("dataset", "field", "named"),
    [
        ({"target": "Y"}, "objective.dataset.target", "'Y'"),
        ({"groups": "region"}, "objective.dataset.groups", "'region'"),
        ({"features": ["x1", "x3", "x4"]}, "objective.dataset.features", "'x3', 'x4'"),
        ({"features": ["x1", "y"]}, "objective.dataset.features", "'y'"),
        ({"features": ["x1", "x1"]}, "objective.dataset.features", "twice"),
    ],
)
def test_columns_must_exist_and_be_distinct(
    dataset: dict[str, Any], field: str, named: str
) -> None:
    got, message = field_of(objective(**dataset), BASIC)
    assert got == field and named in message


def test_non_numeric_features_are_named_with_their_kind() -> None:
    info = table(col("a", N), col("flag", B), col("colour", C), col("day", D), col("y", N))
    field, message = field_of(objective(), info)
    assert field == "objective.dataset.features"
    assert "columns 'colour', 'day' are not numeric (categorical, datetime)" in message
    assert "'a'" not in message and "'flag'" not in message  # booleans are usable
    assert check_objective_table(objective(features=["a", "flag"]), info) == ["a", "flag"]


def test_target_kind_depends_on_the_estimator() -> None:
    info = table(col("a", N), col("label", C), col("price", N, integral=False))
    classifier = objective(target="label", features=["a"])
    assert check_objective_table(classifier, info) == ["a"]
    field, message = field_of(objective("sklearn.linear_model.Ridge", target="label"), info)
    assert field == "objective.dataset.target" and "regressor" in message
    field, message = field_of(objective(target="price", features=["a"]), info)
    assert field == "objective.dataset.target" and "classifier" in message
    ridge = objective("sklearn.linear_model.Ridge", target="price", features=["a"])
    assert check_objective_table(ridge, info) == ["a"]


def test_missing_values_depend_on_the_estimator() -> None:
    info = table(col("a", N, missing=3), col("b", N), col("y", N))
    field, message = field_of(objective(), info)
    assert field == "objective.dataset.features" and "column 'a' has missing" in message
    hgb = objective("sklearn.ensemble.HistGradientBoostingClassifier")
    assert check_objective_table(hgb, info) == ["a", "b"]
    holes_in_target = table(col("a", N), col("y", N, missing=1))
    assert field_of(hgb, holes_in_target)[0] == "objective.dataset.target"


def test_rows_are_checked_only_when_counted_exactly() -> None:
    few = table(col("a", N), col("y", N), rows=3)
    assert field_of(objective(), few)[0] == "objective.cv.n_splits"
    assert field_of(objective(), table(col("a", N), col("y", N), rows=0))[0] == (
        "objective.dataset.path"
    )
    sampled = table(col("a", N), col("y", N), rows=3, exact=False)
    assert check_objective_table(objective(), sampled) == ["a"]


def test_without_an_estimator_only_columns_are_checked() -> None:
    info = table(col("a", N, missing=2), col("y", C))
    assert check_table({"target": "y"}, info) == ["a"]


def test_estimator_traits_without_fitting() -> None:
    assert EstimatorTraits.of("sklearn.svm.SVC") == EstimatorTraits(True, False, False)
    assert EstimatorTraits.of("sklearn.linear_model.Ridge").regressor
    assert EstimatorTraits.of("nowhere.Model") == EstimatorTraits()


def test_describe_frame_kinds_missing_and_whole_numbers() -> None:
    frame = pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [1.0, np.nan, 3.0],
            "g": [0.5, 1.0, 2.0],
            "b": [True, False, True],
            "s": ["x", "y", None],
            "t": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"]),
            "c": pd.Categorical(["u", "v", "u"]),
        }
    )
    info = describe_frame(frame, rows=50)
    kinds = {c.name: c.kind for c in info.columns}
    assert kinds == {"i": N, "f": N, "g": N, "b": B, "s": C, "t": D, "c": C}
    assert info.column("f") == ColumnInfo("f", N, missing=1, integral=True)
    assert info.column("g") is not None and not info.column("g").integral  # type: ignore[union-attr]
    assert info.column("s").missing == 1  # type: ignore[union-attr]
    assert (info.rows, info.rows_exact) == (50, True)


def test_read_errors_name_the_field_and_not_the_contents() -> None:
    missing = read_error(FileNotFoundError(2, "No such file"), "csv", "d.csv")
    assert missing.field == "objective.dataset.path" and "no such file" in missing.message
    no_arrow = read_error(ImportError("no pyarrow", name="pyarrow"), "parquet", "d.parquet")
    assert no_arrow.field == "objective.dataset.source" and "pip install" in no_arrow.message
    other = read_error(ValueError("secret cell value"), "parquet", "d.parquet")
    assert "secret" not in other.message and "ValueError" in other.message
