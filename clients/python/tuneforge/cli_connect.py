"""Server connection for the ``studies|trials|best`` commands: the ``--url`` option, the
client with its short retry budget, study lookup by id or name, and spec files. Their
errors are worded by :mod:`tuneforge.cli_errors`, the one error path of every command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from ._core import RetryPolicy, read_spec_file, study_spec
from .cli_errors import SpecFileError, remember
from .client import Client
from .errors import NotFound, TuneforgeError
from .handles import Study

DEFAULT_URL = "http://127.0.0.1:8000"
#: How long a command keeps retrying a server that does not answer before it gives up.
RETRY_SECONDS = 2.0
#: Per request: a blackholed address fails within 5 s, a slow reply gets 30 s.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
#: Largest study id worth asking the server for (a 64-bit integer column).
MAX_STUDY_ID = 2**63 - 1

F = TypeVar("F", bound=Callable[..., Any])


def check_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An option callback: ``value`` as an http(s) URL without a trailing slash."""
    if value is None:
        return None
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
        callback=check_url,
        metavar="URL",
        help=f"tuneforge server (env TUNEFORGE_URL; default {DEFAULT_URL}, where "
        "`tuneforge serve` listens). These commands read a running server; they "
        "never start an embedded one. TUNEFORGE_API_KEY is sent when set.",
    )(func)


API_KEY_ENV = "TUNEFORGE_API_KEY"
#: The commands that talk to a server as a client (``serve``, ``db``, ``projects`` and
#: ``keys`` work on the database itself; ``audit`` has its own ``--api-key``).
CLIENT_COMMANDS = (
    "studies", "trials", "best", "run", "nested-cv", "quickstart", "worker", "datasets",
)  # fmt: skip


def _set_api_key(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:  # the SDK, the CLI's clients and a worker's settings all read the variable
        os.environ[API_KEY_ENV] = value


def api_key_option(func: F) -> F:
    """``--api-key KEY``: the key sent as ``Authorization: Bearer KEY`` (default
    ``TUNEFORGE_API_KEY``); a server without keys ignores it."""
    return click.option(
        "--api-key",
        expose_value=False,
        is_eager=True,
        callback=_set_api_key,
        metavar="KEY",
        help=f"API key for a server that requires keys (env {API_KEY_ENV}).",
    )(func)


def add_api_key(group: click.Group) -> None:
    """Give every client command of ``group`` (and their sub-commands) ``--api-key``."""

    def add(command: click.Command) -> None:
        if not any(p.name == "api_key" for p in command.params):
            api_key_option(command)
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                add(sub)

    for name in CLIENT_COMMANDS:
        if name in group.commands:
            add(group.commands[name])


@contextmanager
def connect(url: str) -> Iterator[Client]:
    """A client for ``url`` with a short retry budget. Its errors reach the one error path
    of :mod:`tuneforge.cli_errors`, which names ``url`` in its messages."""
    remember("url", url)
    if url != DEFAULT_URL:
        remember("url_flag", f" --url {url}")  # for the commands a hint suggests
    with Client(url, retry=RetryPolicy(total_seconds=RETRY_SECONDS), timeout=TIMEOUT) as client:
        yield client


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
        raise click.ClickException(f"no study {ref!r}") from None  # not "404 not_found: ..."


def _from_tuneforge(exc: TuneforgeError) -> bool:
    """Whether an error reply has tuneforge's ``{"error": {"code": ...}}`` shape (not a
    proxy's page or another server's 404)."""
    return exc.status is None or not exc.code.startswith("http_")


def load_spec(path: str | Path) -> dict[str, Any]:
    """A study spec from a ``.yaml`` / ``.yml`` / ``.json`` file.

    Whatever is wrong with the file is raised as :class:`~tuneforge.cli_errors.SpecFileError`
    (shown as one line naming the file, and the line and column of a syntax error).
    """
    path = Path(path)
    remember("spec_file", str(path))
    try:
        spec = study_spec(read_spec_file(path), {})
        json.dumps(spec)  # YAML dates and the like cannot be sent: say so here
    except Exception as exc:  # every reason is worded by cli_errors.spec_file_message
        raise SpecFileError(path, exc) from exc
    remember("study_name", spec.get("name"))
    return spec
