"""What the ``studies|trials|best`` commands print: JSON, CSV and (rich) tables of
studies and trials.

rich is imported only when a table is drawn.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

import click

from .models import StudyData, TrialData

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

TRIAL_STATES = (
    "requested",
    "active",
    "stopping",
    "paused",
    "completed",
    "pruned",
    "infeasible",
    "failed",
)
#: Above this many parameters, a trials table shows them in one column.
MAX_PARAM_COLUMNS = 6
TRIAL_TIME_COLUMNS = ("created_at", "started_at", "completed_at", "updated_at")


# ---------------------------------------------------------------- JSON and CSV


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def write_csv(header: Sequence[str], rows: Iterable[Mapping[str, Any]], out: IO[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=list(header), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(row.get(key)) for key in header})


def _ordered(declared: Iterable[str], seen: Iterable[str]) -> list[str]:
    """``declared`` names in order, then any other name in ``seen`` (first seen first)."""
    names = dict.fromkeys(declared)
    names.update(dict.fromkeys(seen))
    return list(names)


def trial_columns(study: StudyData, trials: Sequence[TrialData]) -> tuple[list[str], list[str]]:
    """Parameter and metric names in spec order, plus any the trials carry beyond it."""
    params = _ordered((p["name"] for p in study.parameters), (k for t in trials for k in t.params))
    metrics = _ordered(
        (m["name"] for m in study.metrics), (k for t in trials for k in (t.values or {}))
    )
    return params, metrics


def trial_csv_header(params: Sequence[str], metrics: Sequence[str]) -> list[str]:
    return [
        "number",
        "state",
        *(f"params.{p}" for p in params),
        *(f"values.{m}" for m in metrics),
        *TRIAL_TIME_COLUMNS,
        "duration_seconds",
        "reason",
        "retry_of",
        "client_id",
        "metadata",
    ]


def trial_csv_row(trial: TrialData) -> dict[str, Any]:
    row: dict[str, Any] = {"number": trial.number, "state": trial.state}
    row.update({f"params.{k}": v for k, v in trial.params.items()})
    row.update({f"values.{k}": v for k, v in (trial.values or {}).items()})
    row.update({key: getattr(trial, key) for key in TRIAL_TIME_COLUMNS})
    row.update(
        duration_seconds=_duration(trial),
        reason=trial.reason,
        retry_of=trial.retry_of,
        client_id=trial.client_id,
        # JSON: a managed trial's reproducibility record (seeds, versions, host, fingerprint,
        # per-fold scores) and whatever else its worker attached
        metadata=trial.metadata or None,
    )
    return row


def _duration(trial: TrialData) -> float | None:
    if trial.started_at is None or trial.completed_at is None:
        return None
    return (trial.completed_at - trial.started_at).total_seconds()


STUDY_CSV_HEADER = [
    "id",
    "name",
    "state",
    "algorithm",
    "trials",
    "max_trials",
    *(f"trials.{s}" for s in TRIAL_STATES),
    "best_number",
    "best_values",
    "completion_reason",
    "created_at",
    "updated_at",
    "description",
]


def study_csv_row(study: StudyData) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": study.id,
        "name": study.name,
        "state": study.state,
        "algorithm": study.algorithm,
        "trials": sum(study.trial_counts.values()),
        "max_trials": study.max_trials,
        "best_number": study.best_trial.number if study.best_trial else None,
        "best_values": study.best_trial.values if study.best_trial else None,
        "completion_reason": study.completion_reason,
        "created_at": study.created_at,
        "updated_at": study.updated_at,
        "description": study.description,
    }
    row.update({f"trials.{s}": study.trial_counts.get(s, 0) for s in TRIAL_STATES})
    return row


def stdout_stream() -> IO[str]:
    # click.get_text_stream is deprecated (Click 8.3+, gone in 9): the plain stream.
    return sys.stdout


# ---------------------------------------------------------------- tables (rich)


def _console() -> Console:
    from rich.console import Console

    # Piped output keeps whole rows on a line (grep-friendly) unless COLUMNS says otherwise.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=200 if wide else None, highlight=False)


def _table(title: str | None = None, **options: Any) -> Table:
    from rich.table import Table
    from rich.text import Text

    return Table(title=Text(title) if title else None, title_justify="left", **options)


def _text(value: Any) -> Any:
    """A table cell that shows ``value`` literally (no rich markup)."""
    from rich.text import Text

    return Text(_show(value))


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _show_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _assignments(values: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in (values or {}).items()) or "-"


def _counts(study: StudyData) -> str:
    parts = [f"{n} {state}" for state in TRIAL_STATES if (n := study.trial_counts.get(state, 0))]
    return ", ".join(parts) or "none"


def studies_table(studies: Sequence[StudyData]) -> Table:
    table = _table()
    for header, justify in (
        ("ID", "right"),
        ("Name", "left"),
        ("State", "left"),
        ("Algorithm", "left"),
        ("Trials", "right"),
        ("Completed", "right"),
        ("Running", "right"),
        ("Failed", "right"),
        ("Best", "left"),
        ("Created (UTC)", "left"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for s in studies:
        counts = s.trial_counts
        total = sum(counts.values())
        best = (
            f"#{s.best_trial.number} {_assignments(s.best_trial.values)}" if s.best_trial else None
        )
        if best is None and len(s.objectives) > 1 and counts.get("completed"):
            best = "Pareto front: `tuneforge best`"
        table.add_row(
            _text(s.id),
            _text(s.name),
            _text(s.state),
            _text(s.algorithm),
            _text(f"{total} / {s.max_trials}" if s.max_trials else total),
            _text(counts.get("completed", 0) + counts.get("pruned", 0)),
            _text(counts.get("active", 0) + counts.get("stopping", 0)),
            _text(counts.get("failed", 0)),
            _text(best),
            _text(s.created_at),
        )
    return table


def _metric_text(metric: Mapping[str, Any]) -> str:
    role = metric.get("role", "objective")
    text = f"{metric['name']} ({metric.get('goal', 'maximize')}"
    if role == "constraint":
        text += f", constraint, threshold {_show(metric.get('threshold'))}"
    elif role != "objective":
        text += f", {role}"
    return text + ")"


def _domain(param: Mapping[str, Any]) -> str:
    if param.get("values") is not None:
        text = ", ".join(_show(v) for v in param["values"])
        return text if len(text) <= 80 else text[:79] + "…"
    text = f"[{_show(param.get('low'))}, {_show(param.get('high'))}]"
    if param.get("scale", "linear") != "linear":
        text += f" {param['scale']}"
    if param.get("step") is not None:
        text += f" step {_show(param['step'])}"
    return text


def study_tables(study: StudyData) -> list[Table]:
    """The study's settings and state, then its parameters."""
    facts: list[tuple[str, Any]] = [("id", study.id), ("name", study.name)]
    if study.description:
        facts.append(("description", study.description))
    state = study.state
    if study.completion_reason:
        state += f" ({study.completion_reason})"
    facts += [("project", study.project), ("state", state)]
    algorithm = study.algorithm
    if study.algorithm_options:
        algorithm += f" {_show(study.algorithm_options)}"
    facts += [
        ("algorithm", algorithm),
        ("metrics", "; ".join(_metric_text(m) for m in study.metrics)),
        (
            "budget",
            f"max_trials {_show(study.max_trials)}, max_active_trials "
            f"{_show(study.max_active_trials)}, max_failed_trials {_show(study.max_failed_trials)}",
        ),
        ("early stopping", _show(study.early_stopping or {"rule": "none"})),
        (
            "retries",
            f"max_retries {_show(study.retries.get('max_retries'))}, "
            f"lease {_show(study.retries.get('lease_seconds'))} s",
        ),
        ("seed", study.seed),
        ("trials", _counts(study)),
    ]
    if study.best_trial is not None:
        best = study.best_trial
        label = "best" if len(study.objectives) == 1 else "best (see `tuneforge best`)"
        facts.append(
            (label, f"#{best.number} {_assignments(best.values)}  ({_assignments(best.params)})")
        )
    if study.objective is not None:
        facts.append(("managed objective", "yes (see --format json)"))
    if study.evaluation is not None:
        facts.append(("evaluation", _show(study.evaluation)))
    facts += [("created (UTC)", study.created_at), ("updated (UTC)", study.updated_at)]

    summary = _table(f"Study {study.id}: {study.name}", show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column()
    for key, value in facts:
        summary.add_row(_text(key), _text(value))

    params = _table("Parameters")
    for header in ("Name", "Type", "Domain", "Condition"):
        params.add_column(header)
    for p in study.parameters:
        condition = p.get("condition")
        cond_text = (
            f"{condition['parent']} in {_show(condition.get('values'))}" if condition else None
        )
        params.add_row(_text(p["name"]), _text(p.get("type")), _text(_domain(p)), _text(cond_text))
    return [summary, params]


def trials_table(study: StudyData, trials: Sequence[TrialData], title: str) -> Table:
    params, metrics = trial_columns(study, trials)
    split = len(params) <= MAX_PARAM_COLUMNS
    with_reason = any(t.reason for t in trials)
    table = _table(title)
    table.add_column("#", justify="right")
    table.add_column("State")
    for p in params if split else ["Params"]:
        table.add_column(_text(p))
    for m in metrics:
        table.add_column(_text(m), justify="right")
    table.add_column("Started (UTC)")
    table.add_column("Duration", justify="right")
    if with_reason:
        table.add_column("Reason")
    for t in trials:
        cells = [_text(t.number), _text(t.state)]
        if split:
            cells += [_text(t.params.get(p)) for p in params]
        else:
            cells.append(_text(_assignments(t.params)))
        cells += [_text((t.values or {}).get(m)) for m in metrics]
        cells += [_text(t.started_at), _text(_show_duration(_duration(t)))]
        if with_reason:
            cells.append(_text(t.reason))
        table.add_row(*cells)
    return table


def print_tables(*tables: Table) -> None:
    console = _console()
    for table in tables:
        console.print(table)


def emit_study(study: StudyData, fmt: str) -> None:
    if fmt == "json":
        click.echo(json_text(study.model_dump(mode="json")))
    else:
        print_tables(*study_tables(study))


def emit_trials(study: StudyData, trials: Sequence[TrialData], fmt: str, title: str) -> None:
    if fmt == "json":
        click.echo(json_text([t.model_dump(mode="json") for t in trials]))
    elif fmt == "csv":
        params, metrics = trial_columns(study, trials)
        write_csv(trial_csv_header(params, metrics), map(trial_csv_row, trials), stdout_stream())
    else:
        print_tables(trials_table(study, trials, title))
