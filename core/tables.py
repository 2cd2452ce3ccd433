"""Column kinds of a table read in chunks, and one way to load it (no I/O).

An uploaded dataset is described once, when it is uploaded, from every row
(:class:`TableProfile`, chunk by chunk, so a large file needs little memory):
each column's kind (numeric, boolean, categorical, datetime), its missing values
and whether its numbers are all whole. Text columns whose every value is an ISO
8601 date or time are ``datetime``, so a CSV and a Parquet file of the same data
get the same kinds.

:func:`normalized` gives a loaded table the dtypes its kinds call for (numbers
and booleans as float64, text as Python strings with NaN for missing values,
dates as datetime64), so the same data in CSV or in Parquet trains identically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .datasets import ColumnInfo, ColumnKind, TableInfo, _kind

#: Values looked at first when deciding whether a text column holds dates.
DATE_PROBE = 100


class TableProfile:
    """Accumulates column kinds, missing counts and rows over a table's chunks."""

    def __init__(self) -> None:
        self.names: list[str] | None = None
        self.kinds: dict[str, set[ColumnKind]] = {}
        self.missing: dict[str, int] = {}
        self.integral: dict[str, bool] = {}
        self.rows = 0

    def add(self, frame: Any) -> None:
        """Take one chunk (a pandas DataFrame with the table's columns)."""
        from pandas.api import types

        names = [str(c) for c in frame.columns]
        if self.names is None:
            self.names = names
            for name in names:
                self.kinds[name], self.missing[name], self.integral[name] = set(), 0, True
        self.rows += len(frame)
        for name, column in zip(names, frame.columns, strict=True):
            series = frame[column]
            self.missing[name] += int(series.isna().sum())
            present = series.dropna()
            if present.empty:
                continue  # an all-missing chunk says nothing about the kind
            kind = _kind(series.dtype, types)
            if kind == ColumnKind.CATEGORICAL and _all_dates(present):
                kind = ColumnKind.DATETIME
            self.kinds[name].add(kind)
            if kind == ColumnKind.NUMERIC:
                values = present.to_numpy(dtype=float)
                self.integral[name] = self.integral[name] and bool(((values % 1) == 0).all())

    def info(self) -> TableInfo:
        """The table as seen so far."""
        columns = []
        for name in self.names or []:
            kind = _combined(self.kinds[name])
            integral = kind == ColumnKind.NUMERIC and self.integral[name]
            columns.append(ColumnInfo(name, kind, self.missing[name], integral))
        return TableInfo(tuple(columns), self.rows)


def _combined(kinds: set[ColumnKind]) -> ColumnKind:
    """One kind for a column whose chunks were seen as ``kinds``."""
    if not kinds:
        return ColumnKind.NUMERIC  # every value missing: NaN is a number
    if len(kinds) == 1:
        return next(iter(kinds))
    if kinds <= {ColumnKind.NUMERIC, ColumnKind.BOOLEAN}:
        return ColumnKind.NUMERIC
    return ColumnKind.CATEGORICAL


def _all_dates(present: Any) -> bool:
    """Whether every (non-missing) value is text in ISO 8601 form (``2024-05-01``)."""
    import pandas as pd

    if not all(isinstance(v, str) for v in present.iloc[:DATE_PROBE]):
        return False
    if not present.iloc[:DATE_PROBE].str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    parsed = pd.to_datetime(present.astype(str), format="ISO8601", errors="coerce")
    return not bool(parsed.isna().any())


def profile(frames: Iterable[Any]) -> TableInfo:
    """The :class:`TableInfo` of a table given as chunks."""
    table = TableProfile()
    for frame in frames:
        table.add(frame)
    return table.info()


def normalized(frame: Any, info: TableInfo) -> Any:
    """``frame`` with the dtypes of its columns' kinds (see the module's docstring)."""
    import numpy as np
    import pandas as pd

    out = {}
    for column in info.columns:
        series = frame[column.name]
        if column.kind in (ColumnKind.NUMERIC, ColumnKind.BOOLEAN):
            out[column.name] = pd.to_numeric(series, errors="coerce").astype("float64")
        elif column.kind == ColumnKind.DATETIME:
            out[column.name] = pd.to_datetime(series, format="ISO8601", errors="coerce")
        else:
            values = series.astype(object)
            out[column.name] = values.where(series.isna(), values.astype(str)).where(
                series.notna(), np.nan
            )
    return pd.DataFrame(out, index=frame.index)


@dataclass(frozen=True)
class DatasetRecord:
    """An uploaded dataset as the service reports it."""

    id: int
    name: str
    project: str
    format: str
    sha256: str
    size_bytes: int
    table: TableInfo
    target: str | None
    groups: str | None
    created_at: datetime

    def reference(self) -> dict[str, Any]:
        """What a study's ``objective.dataset`` becomes once it names this dataset."""
        return {
            "source": "uploaded",
            "id": self.id,
            "name": self.name,
            "sha256": self.sha256,
            "format": self.format,
        }


def columns_to_json(table: TableInfo) -> list[dict[str, Any]]:
    """The stored form of a table's columns."""
    return [
        {"name": c.name, "kind": c.kind.value, "missing": c.missing, "integral": c.integral}
        for c in table.columns
    ]


def table_from_json(columns: Iterable[Mapping[str, Any]], rows: int) -> TableInfo:
    """A :class:`TableInfo` from :func:`columns_to_json`'s form."""
    return TableInfo(
        tuple(
            ColumnInfo(
                str(c["name"]), ColumnKind(c["kind"]), int(c["missing"]), bool(c["integral"])
            )
            for c in columns
        ),
        rows,
    )
