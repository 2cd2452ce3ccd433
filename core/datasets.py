"""Checks of a managed objective's tabular data against its spec (no I/O).

The server checks a sample of the file when a study is created; the workers run
the same checks on the whole loaded table, so both sides agree on what is usable.
A table is described by :class:`TableInfo` (column kinds, missing values, row
count); :func:`describe_frame` builds one from a pandas DataFrame already in
memory. Every failure is an :class:`~.errors.InvalidSpec` naming its field.
Messages name columns the spec lists (or, for unusable features, the offending
columns) but never echo cell values.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import InvalidSpec

FIELD = "objective.dataset"
#: At most this many column names are listed in one message.
MAX_NAMED = 10


class ColumnKind(StrEnum):
    """What a column holds, as far as an estimator is concerned."""

    NUMERIC = "numeric"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"  # strings, mixed objects, pandas categories
    DATETIME = "datetime"


#: Kinds an estimator can take as they are (booleans become 0/1).
USABLE_FEATURE_KINDS = frozenset({ColumnKind.NUMERIC, ColumnKind.BOOLEAN})
#: ``objective.preprocessing`` steps that encode categorical columns (today's steps only scale).
ENCODING_STEPS: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ColumnInfo:
    """One column: its kind, its missing values, and whether its numbers are all whole."""

    name: str
    kind: ColumnKind
    missing: int = 0
    integral: bool = False


@dataclass(frozen=True)
class TableInfo:
    """A table's columns (in order) and rows; ``rows_exact`` is False for a sample."""

    columns: tuple[ColumnInfo, ...]
    rows: int
    rows_exact: bool = True

    def column(self, name: str) -> ColumnInfo | None:
        """The column called ``name`` (exact, case-sensitive), if any."""
        return next((c for c in self.columns if c.name == name), None)


def describe_frame(frame: Any, *, rows: int | None = None) -> TableInfo:
    """Describe a pandas DataFrame; ``rows`` is the file's exact row count when ``frame``
    is a sample of it (kinds and missing values then come from the sample)."""
    from pandas.api import types

    columns = []
    for name in frame.columns:
        series = frame[name]
        missing = int(series.isna().sum())
        kind = _kind(series.dtype, types)
        integral = False
        if kind == ColumnKind.NUMERIC:
            values = series.dropna().to_numpy(dtype=float, na_value=float("nan"))
            integral = bool(((values % 1) == 0).all())
        columns.append(ColumnInfo(str(name), kind, missing, integral))
    return TableInfo(tuple(columns), len(frame) if rows is None else rows)


def _kind(dtype: Any, types: Any) -> ColumnKind:
    if types.is_bool_dtype(dtype):
        return ColumnKind.BOOLEAN
    if types.is_numeric_dtype(dtype):
        return ColumnKind.NUMERIC
    if types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
        return ColumnKind.DATETIME
    return ColumnKind.CATEGORICAL


@dataclass(frozen=True)
class EstimatorTraits:
    """What the checks need to know of the objective's estimator."""

    classifier: bool = False
    regressor: bool = False
    allows_nan: bool = False

    @staticmethod
    def of(path: str) -> EstimatorTraits:
        """Traits of the estimator class at ``path``; unknown traits when it cannot be
        imported or built without arguments (nothing is fitted)."""
        from sklearn.base import is_classifier, is_regressor

        module_name, _, class_name = path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
            estimator = cls()
        except Exception:  # not installed here, or needs arguments: check columns only
            return EstimatorTraits()
        try:
            allows_nan = bool(estimator.__sklearn_tags__().input_tags.allow_nan)
        except Exception:
            allows_nan = True  # unknown: do not refuse missing values on a guess
        return EstimatorTraits(is_classifier(estimator), is_regressor(estimator), allows_nan)


def check_objective_table(objective: Mapping[str, Any], table: TableInfo) -> list[str]:
    """Check a csv/parquet/uploaded dataset against a normalized ``kind: sklearn``
    objective; return the feature columns, in order. Raises :class:`InvalidSpec`
    naming the field."""
    from .objective import model_path

    return check_table(
        objective["dataset"],
        table,
        estimator=model_path(objective),
        preprocessing=objective.get("preprocessing", []),
        n_splits=objective.get("cv", {}).get("n_splits"),
        pipeline=objective.get("pipeline"),
    )


def check_table(
    dataset: Mapping[str, Any],
    table: TableInfo,
    *,
    estimator: str | None = None,
    preprocessing: Sequence[str] = (),
    n_splits: int | None = None,
    pipeline: Mapping[str, Any] | None = None,
) -> list[str]:
    """Check ``table`` against a dataset spec (``target``, ``groups``, ``features``) and,
    when given, the estimator's (or pipeline's) needs; return the feature columns, in order."""
    if table.rows_exact and table.rows == 0:
        raise InvalidSpec("the file has a header but no data rows", field=f"{FIELD}.path")
    if not dataset.get("target"):
        raise InvalidSpec(
            "is required: name the column to predict (the dataset has no default target)",
            field=f"{FIELD}.target",
        )
    target = _existing(table, dataset["target"], f"{FIELD}.target")
    if dataset.get("groups") is not None:
        _existing(table, dataset["groups"], f"{FIELD}.groups")
    features = _features(table, dataset, skip_dates=pipeline is not None)
    traits = EstimatorTraits.of(estimator) if estimator else EstimatorTraits(allows_nan=True)
    _check_target(target, traits)
    columns = [c for c in (table.column(f) for f in features) if c is not None]
    _check_features(columns, traits, preprocessing, pipeline)
    if table.rows_exact and n_splits is not None and table.rows < n_splits:
        raise InvalidSpec(
            f"{n_splits} folds need at least {n_splits} rows; the file has {table.rows}",
            field="objective.cv.n_splits",
        )
    return features


def _existing(table: TableInfo, name: str, field: str) -> ColumnInfo:
    column = table.column(name)
    if column is None:
        raise InvalidSpec(
            f"no column {name!r} in the file (it has {len(table.columns)}; "
            "names are case-sensitive and must match the header exactly)",
            field=field,
        )
    return column


def _features(table: TableInfo, dataset: Mapping[str, Any], *, skip_dates: bool) -> list[str]:
    """The listed features, or every column but the target and groups (and, for a
    pipeline, but the date columns, which its ColumnTransformer does not take)."""
    field = f"{FIELD}.features"
    target, groups = dataset["target"], dataset.get("groups")
    listed = dataset.get("features")
    if not listed:
        features = [
            c.name
            for c in table.columns
            if c.name not in (target, groups) and not (skip_dates and c.kind == ColumnKind.DATETIME)
        ]
        if not features:
            raise InvalidSpec("the file has no column besides the target and groups", field=field)
        return features
    missing = [name for name in listed if table.column(name) is None]
    if missing:
        raise InvalidSpec(
            f"no {_columns(missing)} in the file (names are case-sensitive)", field=field
        )
    for name in (target, groups):
        if name is not None and name in listed:
            raise InvalidSpec(
                f"lists {name!r}, which is the dataset's {'target' if name == target else 'groups'} "
                "column; remove it from the features",
                field=field,
            )
    if len(set(listed)) != len(listed):
        raise InvalidSpec("lists a column twice", field=field)
    return list(listed)


def _check_target(column: ColumnInfo, traits: EstimatorTraits) -> None:
    field = f"{FIELD}.target"
    if column.missing:
        raise InvalidSpec(
            f"column {column.name!r} has {column.missing} missing values; "
            "drop those rows or choose another target",
            field=field,
        )
    if traits.regressor and column.kind not in USABLE_FEATURE_KINDS:
        raise InvalidSpec(
            f"column {column.name!r} is {column.kind.value}, but the estimator is a regressor "
            "and needs a numeric target (use a classifier, or convert the column to numbers)",
            field=field,
        )
    if traits.classifier and column.kind == ColumnKind.NUMERIC and not column.integral:
        raise InvalidSpec(
            f"column {column.name!r} holds non-integer numbers (a regression target?), "
            "but the estimator is a classifier; use a regressor or class labels",
            field=field,
        )
    if traits.classifier and column.kind == ColumnKind.DATETIME:
        raise InvalidSpec(
            f"column {column.name!r} holds dates, which are not class labels", field=field
        )


def encodes_categories(preprocessing: Sequence[str]) -> bool:
    """Whether the declared preprocessing turns categorical columns into numbers."""
    return any(step in ENCODING_STEPS for step in preprocessing)


def _check_features(
    columns: Sequence[ColumnInfo],
    traits: EstimatorTraits,
    preprocessing: Sequence[str],
    pipeline: Mapping[str, Any] | None = None,
) -> None:
    field = f"{FIELD}.features"
    from .pipelines import encodes_categories as pipeline_encodes
    from .pipelines import imputes_numbers

    unusable = [c for c in columns if c.kind not in USABLE_FEATURE_KINDS]
    encoded = encodes_categories(preprocessing) or pipeline_encodes(pipeline)
    if encoded:
        unusable = [c for c in unusable if c.kind != ColumnKind.CATEGORICAL]
    if pipeline is not None and unusable:
        kinds = sorted({c.kind.value for c in unusable})
        fix = (
            "leave them out of objective.dataset.features"
            if encoded
            else "add objective.pipeline.columns.categorical to encode text columns, or leave "
            "them out of objective.dataset.features"
        )
        raise InvalidSpec(
            f"{_columns([c.name for c in unusable], 'is')} {', '.join(kinds)}, which the "
            f"pipeline cannot take: {fix}",
            field=field,
        )
    if unusable:
        kinds = sorted({c.kind.value for c in unusable})
        raise InvalidSpec(
            f"{_columns([c.name for c in unusable], 'is')} not numeric ({', '.join(kinds)}); "
            "the estimator needs numbers and objective.preprocessing has no encoder: list only "
            "numeric columns in objective.dataset.features, or encode these columns as numbers "
            "in the file",
            field=field,
        )
    with_nan = [c for c in columns if c.missing]
    if encoded:  # the encoders take missing text values as a category of their own
        with_nan = [c for c in with_nan if c.kind != ColumnKind.CATEGORICAL]
    if imputes_numbers(pipeline):
        with_nan = [c for c in with_nan if c.kind == ColumnKind.CATEGORICAL]
    if with_nan and not traits.allows_nan:
        raise InvalidSpec(
            f"{_columns([c.name for c in with_nan], 'has')} missing values and the estimator "
            "does not accept them; fill or drop them in the file, leave the columns out of "
            "objective.dataset.features, or use an estimator that handles missing values "
            "(e.g. sklearn.ensemble.HistGradientBoostingClassifier)",
            field=field,
        )


def _columns(names: Sequence[str], verb: str = "") -> str:
    """``column 'a' is`` / ``columns 'a', 'b' are`` (at most MAX_NAMED names, each cut)."""
    shown = ", ".join(repr(n[:60]) for n in names[:MAX_NAMED])
    more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
    one = len(names) == 1
    verbs = {"": "", "is": " is" if one else " are", "has": " has" if one else " have"}
    return f"column{'' if one else 's'} {shown}{more}{verbs[verb]}"


PARQUET_HINT = "pip install 'pyarrow>=15' where the server and the workers run"


def read_error(exc: BaseException, source: str, path: str) -> InvalidSpec:
    """The :class:`InvalidSpec` for an exception raised while reading a dataset file.

    The message names the path the spec gave and the kind of problem (with a line
    number for a malformed CSV), never the parser's own text, which can quote the
    file's contents.
    """
    if isinstance(exc, ImportError):
        return InvalidSpec(
            f"reading {source} needs a library this process lacks ({exc.name or exc}); "
            f"{PARQUET_HINT}",
            field=f"{FIELD}.source",
        )
    if isinstance(exc, FileNotFoundError):
        problem = "no such file (relative paths start at the first data root)"
    elif isinstance(exc, IsADirectoryError):
        problem = "is a directory, not a file"
    elif isinstance(exc, PermissionError):
        problem = "permission denied"
    elif isinstance(exc, UnicodeDecodeError):
        problem = f"is not text in {exc.encoding} (is it really a {source} file?)"
    elif type(exc).__name__ == "EmptyDataError":
        problem = "the file is empty"
    elif type(exc).__name__ == "ParserError":
        problem = f"is not a well-formed CSV{_line_of(exc)}"
    else:
        problem = f"cannot be read as {source} ({type(exc).__name__})"
    return InvalidSpec(f"{path!r}: {problem}", field=f"{FIELD}.path")


def _line_of(exc: BaseException) -> str:
    """`` (line 3)`` when the parser's message gives a line number, else nothing."""
    match = re.search(r"\bline (\d+)", str(exc))
    return f" (line {match.group(1)})" if match else ""
