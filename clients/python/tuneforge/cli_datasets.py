"""``tuneforge datasets upload|list|show|delete``: tables for managed studies on a server.

Thin clients of ``/api/v1/datasets`` through the SDK, with the same connection,
``--api-key`` and one-line errors as ``tuneforge studies``
(:mod:`tuneforge.cli_errors`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from .cli_connect import connect, url_option
from .cli_output import json_text, print_tables
from .errors import NotFound
from .models import DatasetData


@click.group()
def datasets() -> None:
    """Upload, list and delete datasets that managed studies train on."""


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def datasets_table(found: list[DatasetData]) -> Table:
    table = Table(title="Datasets", show_lines=False)
    for column in ("id", "name", "format", "rows", "columns", "target", "size", "sha256"):
        table.add_column(column)
    for d in found:
        table.add_row(
            str(d.id),
            d.name,
            d.format,
            str(d.rows),
            str(len(d.columns)),
            d.target or "",
            _size(d.size_bytes),
            d.sha256[:12],
        )
    return table


def columns_table(dataset: DatasetData) -> Table:
    table = Table(title=f"Dataset {dataset.id}: {dataset.name} ({dataset.rows} rows)")
    for column in ("column", "kind", "missing", "role"):
        table.add_column(column)
    for c in dataset.columns:
        role = (
            "target" if c.name == dataset.target else "groups" if c.name == dataset.groups else ""
        )
        table.add_row(c.name, c.kind, str(c.missing), role)
    return table


def _emit(dataset: DatasetData, fmt: str) -> None:
    if fmt == "json":
        click.echo(json_text(dataset.model_dump(mode="json")))
    else:
        print_tables(columns_table(dataset))
        click.echo(
            f"fingerprint {dataset.sha256}; use it in a study as objective.dataset: "
            f'{{"source": "uploaded", "name": "{dataset.name}"}}'
        )


def _format_option(func: Any) -> Any:
    return click.option(
        "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
        show_default=True, help="Output: a table or pretty JSON.",
    )(func)  # fmt: skip


@datasets.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="The dataset's name (default: the file name without its suffix).")
@click.option("--target", help="The column studies predict unless they name another.")
@click.option("--groups", help="A column of group labels (for group_kfold).")
@click.option(
    "--file-format",
    type=click.Choice(["csv", "parquet"]),
    help="csv or parquet (default: detected).",
)
@_format_option
@url_option
def datasets_upload(
    file: Path,
    name: str | None,
    target: str | None,
    groups: str | None,
    file_format: str | None,
    fmt: str,
    url: str,
) -> None:
    """Upload a CSV or Parquet FILE; print its columns as the server detected them."""
    with connect(url) as client:
        dataset = client.upload_dataset(
            file, name=name, target=target, groups=groups, format=file_format
        )
    _emit(dataset, fmt)


@datasets.command("list")
@_format_option
@url_option
def datasets_list(fmt: str, url: str) -> None:
    """List the project's datasets (oldest first)."""
    with connect(url) as client:
        found = client.list_datasets()
    if fmt == "json":
        click.echo(json_text([d.model_dump(mode="json") for d in found]))
    elif not found:
        click.echo("no datasets")
    else:
        print_tables(datasets_table(found))


def _open(client: Any, ref: str) -> DatasetData:
    """The dataset with id ``ref`` when it is a number (else, or when there is none, the
    dataset named ``ref``); a one-line error when neither exists."""
    if ref.isascii() and ref.isdigit() and len(ref) <= 10:
        try:
            return client.get_dataset(int(ref))  # type: ignore[no-any-return]
        except NotFound:
            pass
    try:
        return client.get_dataset(ref)  # type: ignore[no-any-return]
    except NotFound:
        raise click.ClickException(f"no dataset {ref!r}") from None


@datasets.command("show")
@click.argument("dataset", metavar="DATASET")
@_format_option
@url_option
def datasets_show(dataset: str, fmt: str, url: str) -> None:
    """Show one dataset's columns (DATASET is its id or name)."""
    with connect(url) as client:
        found = _open(client, dataset)
    _emit(found, fmt)


@datasets.command("delete")
@click.argument("dataset", metavar="DATASET")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
@url_option
def datasets_delete(dataset: str, yes: bool, url: str) -> None:
    """Delete a dataset no unfinished study uses (DATASET is its id or name)."""
    with connect(url) as client:
        found = _open(client, dataset)
        if not yes:
            click.confirm(f"Delete dataset {found.id} {found.name!r}?", abort=True)
        client.delete_dataset(found.id)
    click.echo(f"deleted dataset {found.id} {found.name!r}")


def register(group: click.Group) -> None:
    """Add ``datasets`` to the ``tuneforge`` command group."""
    group.add_command(datasets)
