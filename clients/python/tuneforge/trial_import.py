"""Reading finished trials to import into a study: from a CSV or JSON-lines export
(``GET .../trials?format=csv|jsonl``, ``tuneforge studies export``) or from another
study. Parameter values from CSV cells are turned back into numbers, booleans or
strings by the target study's parameter types; the server checks every value again."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import StudyData, TrialData


@dataclass(frozen=True)
class ImportRow:
    """One trial read from a source: where it came from and what to record."""

    number: int | None
    state: str
    params: dict[str, Any]
    values: dict[str, float]
    metadata: dict[str, Any]


def rows_from_file(path: Path, target: StudyData) -> Iterator[ImportRow]:
    """The trials of a ``.csv`` or ``.jsonl`` (``.ndjson``) export, one at a time."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_rows(path)
    if suffix == ".csv":
        return _csv_rows(path, target)
    raise ValueError(f"{path}: exports to import end in .csv, .jsonl or .ndjson")


def rows_from_trials(trials: Sequence[TrialData] | Iterator[TrialData]) -> Iterator[ImportRow]:
    for t in trials:
        yield ImportRow(t.number, t.state, dict(t.params), dict(t.values or {}), dict(t.metadata))


def _jsonl_rows(path: Path) -> Iterator[ImportRow]:
    with path.open(encoding="utf-8") as lines:
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                t = json.loads(line)
                yield ImportRow(
                    t.get("number"),
                    str(t.get("state", "completed")),
                    dict(t.get("params") or {}),
                    dict(t.get("values") or {}),
                    dict(t.get("metadata") or {}),
                )
            except (ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}, line {i}: not a trial object ({exc})") from None


def _csv_rows(path: Path, target: StudyData) -> Iterator[ImportRow]:
    specs = {p["name"]: p for p in target.parameters}
    with path.open(encoding="utf-8", newline="") as handle:
        for i, row in enumerate(csv.DictReader(handle), 2):
            try:
                yield _csv_row(row, specs)
            except ValueError as exc:
                raise ValueError(f"{path}, line {i}: {exc}") from None


def _csv_row(row: Mapping[str, str | None], specs: Mapping[str, Mapping[str, Any]]) -> ImportRow:
    params: dict[str, Any] = {}
    values: dict[str, float] = {}
    metadata: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or cell is None or cell == "":
            continue
        kind, _, name = column.partition(".")
        if kind == "params":
            params[name] = param_value(cell, specs.get(name))
        elif kind == "values":
            values[name] = float(cell)
        elif column == "metadata":
            metadata.update(json.loads(cell))
        elif kind == "metadata":
            _nest(metadata, name.split("."), _metadata_value(cell))
    number = row.get("number")
    state = row.get("state") or "completed"
    return ImportRow(int(number) if number else None, state, params, values, metadata)


def param_value(cell: str, spec: Mapping[str, Any] | None) -> Any:
    """A CSV cell as the parameter's value: a number for float / int, the matching choice
    for discrete / categorical (choices are written as the export writes them)."""
    kind = spec.get("type") if spec else None
    if kind == "int":
        return int(float(cell))
    if kind == "float":
        return float(cell)
    if kind in ("discrete", "categorical") and spec is not None:
        for choice in spec.get("values") or []:
            if _as_cell(choice) == cell:
                return choice
        if kind == "discrete":
            return float(cell)
    return cell


def _as_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _metadata_value(cell: str) -> Any:
    """JSON objects and lists come back as such; other cells stay text."""
    if cell[:1] in ("[", "{"):
        try:
            return json.loads(cell)
        except ValueError:
            return cell
    return cell


def _nest(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        inner = target.setdefault(key, {})
        if not isinstance(inner, dict):
            return
        target = inner
    target[keys[-1]] = value
