"""``tuneforge studies importance``, ``studies import``, ``report`` and ``mlflow-sync``:
the analysis commands (docs/analysis.md). Like ``studies``, they read a running server
(``--url``) through the SDK and never start an embedded one.

:func:`register` adds them to the main ``tuneforge`` group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .cli_connect import api_key_option, connect, open_study, url_option
from .cli_output import json_text, print_tables
from .models import ImportanceReply

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


def register(group: click.Group) -> None:
    """Add the analysis commands: ``studies importance`` under ``studies``."""
    studies = group.commands["studies"]
    assert isinstance(studies, click.Group)
    studies.add_command(api_key_option(studies_importance))
