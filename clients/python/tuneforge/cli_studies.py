"""``tuneforge studies|trials|best``: read and manage the studies of a running server.

These commands are thin clients of the REST API (through the SDK). Unlike
``tuneforge.Client()`` they never start an embedded server: without ``--url``
or ``TUNEFORGE_URL`` they talk to ``http://127.0.0.1:8000``, where
``tuneforge serve`` listens by default. Every failure a user can cause
(unreachable server, unknown study, bad spec file, a rule the server enforces)
ends with a one-line message and a non-zero exit code, never a traceback
(:mod:`tuneforge.cli_errors`).

:func:`register` adds the commands to the main ``tuneforge`` group.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from .cli_connect import connect, load_spec, open_study, url_option
from .cli_output import (
    STUDY_CSV_HEADER,
    TRIAL_STATES,
    emit_study,
    emit_trials,
    json_text,
    print_tables,
    stdout_stream,
    studies_table,
    study_csv_row,
    trial_columns,
    trial_csv_header,
    trial_csv_row,
    write_csv,
)

STUDY_STATES = ("active", "paused", "completed")

F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------- options


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
        click.echo(json_text([s.model_dump(mode="json") for s in found]))
    elif fmt == "csv":
        write_csv(STUDY_CSV_HEADER, map(study_csv_row, found), stdout_stream())
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
        data = client.create_study(spec, if_exists="return" if if_exists == "return" else None).data
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
            out.write(json_text(body) + "\n")
        else:
            params, metrics = trial_columns(data, trials)
            write_csv(trial_csv_header(params, metrics), map(trial_csv_row, trials), out)

    if output is None:
        write(stdout_stream())
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
