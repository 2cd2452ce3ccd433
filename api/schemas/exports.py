"""The CSV and JSON-lines shapes of a trials export (``GET .../trials?format=csv|jsonl``).

JSON lines: one trial per line, exactly the objects of the JSON page
(``TrialPublic``: params, values, state, timestamps, metadata, measurements).
CSV: one row per trial, columns as ``tuneforge studies export --format csv``
writes them, plus the measurements' count and last step and the metadata
flattened to ``metadata.<key>`` (nested keys dotted; lists as JSON).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from ...core.study import StudySpec
from ...core.trials import Trial
from ..services.exports import flatten
from .trials import trial_public

TIME_COLUMNS = ("created_at", "started_at", "completed_at", "updated_at")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def jsonl_lines(trials: Iterable[Trial]) -> Iterator[str]:
    for trial in trials:
        yield trial_public(trial).model_dump_json() + "\n"


def csv_header(spec: StudySpec, metadata_keys: Sequence[str] | None) -> list[str]:
    """The columns: trial, params and values in spec order, times, metadata last."""
    meta = ["metadata"] if metadata_keys is None else [f"metadata.{k}" for k in metadata_keys]
    return [
        "number",
        "state",
        *(f"params.{name}" for name in spec.space.names),
        *(f"values.{m.name}" for m in spec.metrics),
        *TIME_COLUMNS,
        "duration_seconds",
        "reason",
        "retry_of",
        "client_id",
        "n_measurements",
        "last_step",
        *meta,
    ]


def csv_lines(header: Sequence[str], trials: Iterable[Trial]) -> Iterator[str]:
    """The header line, then one line per trial (columns a trial lacks stay empty)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    yield _take(buffer)
    one_column = "metadata" in header
    for trial in trials:
        row = csv_row(trial, one_column)
        writer.writerow([_cell(row.get(column)) for column in header])
        yield _take(buffer)


def csv_row(trial: Trial, metadata_as_json: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {"number": trial.number, "state": trial.state.value}
    row.update({f"params.{k}": v for k, v in trial.params.items()})
    row.update({f"values.{k}": v for k, v in (trial.values or {}).items()})
    row.update({key: getattr(trial, key) for key in TIME_COLUMNS})
    started, done = trial.started_at, trial.completed_at
    row.update(
        duration_seconds=(done - started).total_seconds() if started and done else None,
        reason=trial.reason,
        retry_of=trial.retry_of,
        client_id=trial.client_id,
        n_measurements=len(trial.measurements),
        last_step=trial.measurements[-1].step if trial.measurements else None,
    )
    if metadata_as_json:
        row["metadata"] = dict(trial.metadata) or None
    else:
        row.update({f"metadata.{k}": v for k, v in flatten(trial.metadata).items()})
    return row


def batched(lines: Iterable[str], size: int = 200) -> Iterator[str]:
    """``size`` lines per chunk sent, instead of one write per trial."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield "".join(chunk)
            chunk.clear()
    if chunk:
        yield "".join(chunk)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
