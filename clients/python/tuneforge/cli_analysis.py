"""``tuneforge studies importance``, ``studies import``, ``report`` and ``mlflow-sync``:
the analysis commands (docs/analysis.md). Like ``studies``, they read a running server
(``--url``) through the SDK and never start an embedded one.

:func:`register` adds them to the main ``tuneforge`` group.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli_connect import api_key_option, connect, open_study, url_option
from .cli_output import json_text, print_tables
from .errors import InvalidSpec
from .handles import Study
from .models import ImportanceReply
from .trial_import import ImportRow, rows_from_file, rows_from_trials

if TYPE_CHECKING:
    from rich.table import Table

#: Width of the importance bars in the table.
BAR_WIDTH = 30


@click.command("importance")
@click.argument("study", metavar="STUDY")
@click.option(
    "--objective", default=None, help="A metric of the study (default: its first objective)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output: a table, or the endpoint's JSON.",
)
@url_option
def studies_importance(study: str, objective: str | None, fmt: str, url: str) -> None:
    """Show which parameters matter: each one's share of the objective's variance and the
    strongest pairwise interactions (functional ANOVA of a random forest; needs 5
    completed trials).

    STUDY is the study's id or name.
    """
    with connect(url) as client:
        handle = open_study(client, study)
        reply = handle.importance(objective)
    if fmt == "json":
        click.echo(json_text(reply.model_dump(mode="json")))
        return
    print_tables(*importance_tables(reply, f"Study {handle.id}: {handle.name}"))


def importance_tables(reply: ImportanceReply, title: str) -> list[Table]:
    """A table of parameters and one of the interactions, each with a bar per row."""
    from rich.table import Table
    from rich.text import Text

    head = f"{title}: importance for {reply.objective} ({reply.n_trials} completed trials)"
    params = Table(title=Text(head), title_justify="left")
    params.add_column("parameter")
    params.add_column("importance", justify="right")
    params.add_column("")
    for p in reply.params:
        params.add_row(Text(p.name), f"{p.importance:.3f}", _bar(p.importance))
    pairs = Table(title=Text("Pairwise interactions"), title_justify="left")
    pairs.add_column("parameters")
    pairs.add_column("importance", justify="right")
    pairs.add_column("")
    for i in reply.interactions:
        pairs.add_row(Text(" x ".join(i.params)), f"{i.importance:.3f}", _bar(i.importance))
    return [params, pairs] if reply.interactions else [params]


def _bar(share: float) -> str:
    return "█" * round(max(0.0, min(1.0, share)) * BAR_WIDTH)


@click.command("import")
@click.argument("study", metavar="STUDY")
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="A CSV or JSON-lines export (.csv, .jsonl).",
)
@click.option("--from-study", "from_study", metavar="SOURCE", help="Another study (id or name).")
@url_option
def studies_import(study: str, from_file: Path | None, from_study: str | None, url: str) -> None:
    """Copy finished trials into STUDY: the completed trials of an export file or of
    another study on the same server become completed trials of STUDY (they count
    towards its budget). Trials whose parameters do not fit STUDY's space, or that lack
    one of its objectives, are skipped and counted; values of metrics STUDY does not
    have are dropped. To let the algorithm learn from another study without copying,
    use the spec's warm_start field instead.

    STUDY is the study's id or name.
    """
    if (from_file is None) == (from_study is None):
        raise click.UsageError("give exactly one of --from-file FILE or --from-study SOURCE")
    with connect(url) as client:
        target = open_study(client, study)
        if from_study is not None:
            source = open_study(client, from_study)
            origin: dict[str, Any] = {"study": source.id, "study_name": source.name}
            rows: Iterable[ImportRow] = rows_from_trials(t.data for t in source.trials("completed"))
        else:
            assert from_file is not None
            origin = {"file": from_file.name}
            rows = _read_file(from_file, target)
        tally = _import(target, rows, origin)
    click.echo(tally.line(target))


def _read_file(path: Path, target: Study) -> list[ImportRow]:
    try:
        return list(rows_from_file(path, target.data))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot import {path}: {exc}") from None


class _Tally:
    """What an import did: trials recorded, skipped by reason, metrics dropped."""

    def __init__(self) -> None:
        self.imported = 0
        self.skipped: Counter[str] = Counter()
        self.example = ""
        self.dropped: set[str] = set()

    def line(self, target: Study) -> str:
        text = f"imported {self.imported} trial(s) into study {target.id} {target.name!r}"
        if self.skipped:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
            text += f"; skipped {sum(self.skipped.values())} ({reasons})"
            if self.example:
                text += f"; e.g. {self.example}"
        if self.dropped:
            text += f"; dropped values of metrics the study does not have: {sorted(self.dropped)}"
        return text


def _import(target: Study, rows: Iterable[ImportRow], origin: dict[str, Any]) -> _Tally:
    tally = _Tally()
    metrics = {m["name"] for m in target.data.metrics}
    for row in rows:
        if row.state != "completed":
            tally.skipped["not completed"] += 1
            continue
        tally.dropped.update(set(row.values) - metrics)
        values = {k: v for k, v in row.values.items() if k in metrics}
        if not values:
            tally.skipped["without values"] += 1
            continue
        metadata = {**row.metadata, "imported_from": {**origin, "number": row.number}}
        try:
            target.add_trial(row.params, values, metadata=metadata)
        except InvalidSpec as exc:  # a parameter outside the space, a missing objective
            tally.skipped["rejected"] += 1
            tally.example = tally.example or str(exc)
            continue
        tally.imported += 1
    return tally


@click.command("report")
@click.argument("study", metavar="STUDY")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Where to write the HTML (default: study-<id>-report.html).",
)
@url_option
def report(study: str, output: Path | None, url: str) -> None:
    """Write one self-contained HTML report of a study: best configuration, CV score
    beside the held-out test score, parameter importance and interactions, search
    history, early-stopping picture and the spec. plotly.js and the data are embedded,
    so the file opens offline.

    STUDY is the study's id or name.
    """
    from .report import write_report

    with connect(url) as client:
        handle = open_study(client, study)
        target = output or Path(f"study-{handle.id}-report.html")
        try:
            write_report(handle, target)
        except OSError as exc:
            raise click.ClickException(f"cannot write {target}: {exc.strerror or exc}") from None
    size = target.stat().st_size / 1e6
    click.echo(f"wrote the report of study {handle.id} {handle.name!r} to {target} ({size:.1f} MB)")


@click.command("mlflow-sync")
@click.argument("study", metavar="STUDY")
@click.option(
    "--tracking-uri",
    default=None,
    metavar="URI",
    help="MLflow tracking URI, e.g. file:./mlruns, sqlite:///mlflow.db or http://host:5000 "
    "(default: MLflow's own, MLFLOW_TRACKING_URI).",
)
@click.option("--experiment", default=None, help="MLflow experiment (default: the study's name).")
@url_option
def mlflow_sync(study: str, tracking_uri: str | None, experiment: str | None, url: str) -> None:
    """Log a study to MLflow: a parent run for the study and a nested run per finished
    trial (params, final and per-step metrics, tags). Trials logged before are skipped,
    so running it again adds only new trials. Needs: pip install 'tuneforge[mlflow]'.

    STUDY is the study's id or name.
    """
    if tracking_uri is not None and tracking_uri.startswith("file:"):
        # MLflow 3 refuses file stores unless asked; naming one here is asking
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        from .mlflow import sync_study
    except ImportError as exc:  # pragma: no cover - the module itself imports nothing
        raise click.ClickException(str(exc)) from None
    with connect(url) as client:
        handle = open_study(client, study)
        try:
            result = sync_study(handle, tracking_uri, experiment)
        except ImportError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"study {handle.id} {handle.name!r}: logged {result.logged} trial run(s), "
        f"{result.already} already there; parent run {result.parent_run_id} in experiment "
        f"{result.experiment_id}"
    )


def register(group: click.Group) -> None:
    """Add the analysis commands: ``studies importance``, ``studies import`` and ``report``."""
    studies = group.commands["studies"]
    assert isinstance(studies, click.Group)
    studies.add_command(api_key_option(studies_importance))
    studies.add_command(api_key_option(studies_import))
    group.add_command(api_key_option(report))
    group.add_command(api_key_option(mlflow_sync))
