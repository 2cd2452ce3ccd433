"""``tuneforge studies|trials|best``: read and manage the studies of a running server.

These commands are thin clients of the REST API (through the SDK). Unlike
``tuneforge.Client()`` they never start an embedded server: without ``--url``
or ``TUNEFORGE_URL`` they talk to ``http://127.0.0.1:8000``, where
``tuneforge serve`` listens by default. Every failure a user can cause
(unreachable server, unknown study, bad spec file, a rule the server enforces)
ends with a one-line message and a non-zero exit code, never a traceback.

:func:`register` adds the commands to the main ``tuneforge`` group.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click
import httpx

from ._core import RetryPolicy, read_spec_file, study_spec
from .client import Client
from .errors import (
    Conflict,
    ConnectionFailed,
    InvalidSpec,
    NotFound,
    TuneforgeError,
    Unauthorized,
)
from .handles import Study
from .models import StudyData, TrialData

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8000"
#: How long a command keeps retrying a server that does not answer before it gives up.
RETRY_SECONDS = 2.0
#: Per request: a blackholed address fails within 5 s, a slow reply gets 30 s.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
STUDY_STATES = ("active", "paused", "completed")
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
#: Largest study id worth asking the server for (a 64-bit integer column).
MAX_STUDY_ID = 2**63 - 1
#: Above this many parameters, a trials table shows them in one column.
MAX_PARAM_COLUMNS = 6
TRIAL_TIME_COLUMNS = ("created_at", "started_at", "completed_at", "updated_at")

F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------- options


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    value = value.strip()
    try:
        parsed = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def url_option(func: F) -> F:
    return click.option(
        "--url",
        envvar="TUNEFORGE_URL",
        default=DEFAULT_URL,
        callback=_check_url,
        metavar="URL",
        help=f"tuneforge server (env TUNEFORGE_URL; default {DEFAULT_URL}, where "
        "`tuneforge serve` listens). These commands read a running server; they "
        "never start an embedded one. TUNEFORGE_API_KEY is sent when set.",
    )(func)


def format_option(*choices: str) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help="Output: "
        + ", ".join({"table": "a table", "json": "pretty JSON", "csv": "CSV"}[c] for c in choices)
        + ".",
    )


def study_argument(func: F) -> F:
    return click.argument("study", metavar="STUDY")(func)


# ---------------------------------------------------------------- connection and errors


@contextmanager
def connect(url: str) -> Iterator[Client]:
    """A client for ``url`` with a short retry budget; SDK errors become one-line CLI errors."""
    client: Client | None = None
    try:
        client = Client(url, retry=RetryPolicy(total_seconds=RETRY_SECONDS), timeout=TIMEOUT)
        yield client
    except ConnectionFailed as exc:
        cause = exc.__cause__
        reason = f"{type(cause).__name__}: {cause}" if cause is not None else exc.message
        raise click.ClickException(
            _one_line(
                f"cannot reach tuneforge at {url}: {reason} (gave up after {exc.attempts} "
                "attempt(s); is `tuneforge serve` running? set --url or TUNEFORGE_URL)"
            )
        ) from None
    except Unauthorized as exc:
        raise click.ClickException(_one_line(f"{exc} (set TUNEFORGE_API_KEY)")) from None
    except TuneforgeError as exc:
        if not _from_tuneforge(exc):
            raise click.ClickException(
                _one_line(f"unexpected reply from {url} (is it a tuneforge server?): {exc}")
            ) from None
        raise click.ClickException(_one_line(str(exc))) from None
    except httpx.InvalidURL as exc:
        raise click.ClickException(f"invalid --url {url!r}: {exc}") from None
    finally:
        if client is not None:
            client.close()


def open_study(client: Client, ref: str) -> Study:
    """The study with id ``ref`` when it is a number (else, or when there is none, the
    study named ``ref``); a one-line error when neither exists."""
    if ref.isascii() and ref.isdigit() and int(ref) <= MAX_STUDY_ID:
        try:
            return client.get_study(int(ref))
        except NotFound as exc:
            if not _from_tuneforge(exc):
                raise
    try:
        return client.get_study(ref)
    except NotFound as exc:
        if not _from_tuneforge(exc):
            raise
        raise click.ClickException(f"no study {ref!r}") from None


def _from_tuneforge(exc: TuneforgeError) -> bool:
    """Whether an error reply has tuneforge's ``{"error": {"code": ...}}`` shape (not a
    proxy's page or another server's 404)."""
    return exc.status is None or not exc.code.startswith("http_")


def _one_line(text: str, limit: int = 1000) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def load_spec(path: Path) -> dict[str, Any]:
    """A study spec from a ``.yaml`` / ``.yml`` / ``.json`` file, or a one-line error."""
    import yaml

    try:
        spec = study_spec(read_spec_file(path), {})
        json.dumps(spec)  # YAML dates and the like cannot be sent: say so here
    except FileNotFoundError:
        raise click.ClickException(f"spec file {path} does not exist") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read spec file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise click.ClickException(
            _one_line(f"{path}: YAML syntax error{where}: {problem}")
        ) from None
    except json.JSONDecodeError as exc:
        raise click.ClickException(
            f"{path}: JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError:
        raise click.ClickException(f"{path}: not UTF-8 text") from None
    except (ValueError, TypeError) as exc:
        message = str(exc)
        if isinstance(exc, TypeError):  # from json.dumps: a YAML date, set, ...
            message += " (quote it in the spec file)"
        if not message.startswith(str(path)):
            message = f"{path}: {message}"
        raise click.ClickException(_one_line(message)) from None
    return spec


def _spec_error(path: Path, exc: InvalidSpec) -> click.ClickException:
    message = exc.message
    if exc.field and not message.startswith(exc.field):
        message = f"{exc.field}: {message}"
    return click.ClickException(_one_line(f"invalid study spec in {path}: {message}"))


# ---------------------------------------------------------------- JSON and CSV


def _json_text(data: Any) -> str:
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


def _stdout() -> IO[str]:
    return click.get_text_stream("stdout")


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
        click.echo(_json_text(study.model_dump(mode="json")))
    else:
        print_tables(*study_tables(study))


def emit_trials(study: StudyData, trials: Sequence[TrialData], fmt: str, title: str) -> None:
    if fmt == "json":
        click.echo(_json_text([t.model_dump(mode="json") for t in trials]))
    elif fmt == "csv":
        params, metrics = trial_columns(study, trials)
        write_csv(trial_csv_header(params, metrics), map(trial_csv_row, trials), _stdout())
    else:
        print_tables(trials_table(study, trials, title))


# ---------------------------------------------------------------- commands


@click.group()
def studies() -> None:
    """List, show, create, export and delete studies."""


@studies.command("list")
@click.option("--state", type=click.Choice(STUDY_STATES), help="Only studies in this state.")
@format_option("table", "json", "csv")
@url_option
def studies_list(state: str | None, fmt: str, url: str) -> None:
    """List studies with their trial counts and best result (oldest first)."""
    with connect(url) as client:
        found = [s.data for s in client.list_studies(state=state)]
    if fmt == "json":
        click.echo(_json_text([s.model_dump(mode="json") for s in found]))
    elif fmt == "csv":
        write_csv(STUDY_CSV_HEADER, map(study_csv_row, found), _stdout())
    elif not found:
        click.echo(f"no {state} studies" if state else "no studies")
    else:
        print_tables(studies_table(found))


@studies.command("show")
@study_argument
@format_option("table", "json")
@url_option
def studies_show(study: str, fmt: str, url: str) -> None:
    """Show one study: settings, parameters, progress, best trial.

    STUDY is the study's id or name.
    """
    with connect(url) as client:
        data = open_study(client, study).data
    emit_study(data, fmt)


@studies.command("create")
@click.argument("spec_file", type=click.Path(path_type=Path), metavar="SPEC_FILE")
@click.option(
    "--if-exists",
    type=click.Choice(["error", "return"]),
    default="error",
    show_default=True,
    help="When a study of that name exists: fail, or return it if its spec is identical.",
)
@format_option("table", "json")
@url_option
def studies_create(spec_file: Path, if_exists: str, fmt: str, url: str) -> None:
    """Create a study from a YAML or JSON spec file and print it.

    SPEC_FILE ends in .yaml, .yml or .json and holds the study spec of
    docs/api.md (the body of POST /api/v1/studies).
    """
    spec = load_spec(spec_file)
    with connect(url) as client:
        try:
            created = client.create_study(
                spec, if_exists="return" if if_exists == "return" else None
            )
        except InvalidSpec as exc:
            raise _spec_error(spec_file, exc) from None
        except Conflict as exc:
            hint = " (--if-exists return reuses a study with the same spec)"
            raise click.ClickException(_one_line(f"{exc.message}{hint}")) from None
        data = created.data
    emit_study(data, fmt)


@studies.command("delete")
@study_argument
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
@url_option
def studies_delete(study: str, yes: bool, url: str) -> None:
    """Delete a study and all its trials (asks first unless --yes).

    STUDY is the study's id or name.
    """
    with connect(url) as client:
        handle = open_study(client, study)
        total = sum(handle.trial_counts.values())
        if not yes:
            click.confirm(
                f"Delete study {handle.id} {handle.name!r} and its {total} trial(s)?", abort=True
            )
        handle.delete()
    click.echo(f"deleted study {handle.id} {handle.name!r} ({total} trial(s))")


@studies.command("export")
@study_argument
@format_option("json", "csv")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write to FILE instead of standard output.",
)
@url_option
def studies_export(study: str, fmt: str, output: Path | None, url: str) -> None:
    """Export a study with every trial.

    json: {"study": ..., "trials": [...]} with each trial's measurements.
    csv: one row per trial: number, state, params.<name>, values.<metric>,
    timestamps (UTC), duration_seconds, reason, retry_of, client_id.
    """
    with connect(url) as client:
        handle = open_study(client, study)
        trials = [t.data for t in handle.trials()]
        data = handle.data

    def write(out: IO[str]) -> None:
        if fmt == "json":
            body = {
                "study": data.model_dump(mode="json"),
                "trials": [t.model_dump(mode="json") for t in trials],
            }
            out.write(_json_text(body) + "\n")
        else:
            params, metrics = trial_columns(data, trials)
            write_csv(trial_csv_header(params, metrics), map(trial_csv_row, trials), out)

    if output is None:
        write(_stdout())
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as out:
            write(out)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote study {data.id} {data.name!r} ({len(trials)} trials) to {output}", err=True)


@click.group()
def trials() -> None:
    """Inspect the trials of a study."""


@trials.command("list")
@study_argument
@click.option("--state", type=click.Choice(TRIAL_STATES), help="Only trials in this state.")
@format_option("table", "json", "csv")
@url_option
def trials_list(study: str, state: str | None, fmt: str, url: str) -> None:
    """List the trials of a study in number order.

    STUDY is the study's id or name.
    """
    with connect(url) as client:
        handle = open_study(client, study)
        found = [t.data for t in handle.trials(state=state)]
    if fmt == "table" and not found:
        which = f"{state} trials" if state else "trials"
        click.echo(f"no {which} in study {handle.id} {handle.name!r}")
        return
    emit_trials(handle.data, found, fmt, f"Study {handle.id}: {handle.name}")


@click.command("best")
@study_argument
@format_option("table", "json", "csv")
@url_option
def best(study: str, fmt: str, url: str) -> None:
    """Show the best trial of a study (or its Pareto front).

    With several objectives the Pareto front has one row per trial.

    STUDY is the study's id or name.
    """
    with connect(url) as client:
        handle = open_study(client, study)
        front = [t.data for t in handle.best_trials()]
    if fmt == "table" and not front:
        click.echo(f"no completed trial yet in study {handle.id} {handle.name!r}")
        return
    several = len(handle.data.objectives) > 1
    title = f"Study {handle.id}: {handle.name}: " + (
        f"Pareto front ({len(front)} trials)" if several else "best trial"
    )
    emit_trials(handle.data, front, fmt, title)


def register(group: click.Group) -> None:
    """Add ``studies``, ``trials`` and ``best`` to the ``tuneforge`` command group."""
    group.add_command(studies)
    group.add_command(trials)
    group.add_command(best)
