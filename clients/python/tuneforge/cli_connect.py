"""Server connection for the ``studies|trials|best`` commands: the ``--url`` option, the
client with its short retry budget, study lookup by id or name, spec files, and the
conversion of every failure a user can cause into a one-line :class:`click.ClickException`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from ._core import RetryPolicy, read_spec_file, study_spec
from .client import Client
from .errors import ConnectionFailed, InvalidSpec, NotFound, TuneforgeError, Unauthorized
from .handles import Study

DEFAULT_URL = "http://127.0.0.1:8000"
#: How long a command keeps retrying a server that does not answer before it gives up.
RETRY_SECONDS = 2.0
#: Per request: a blackholed address fails within 5 s, a slow reply gets 30 s.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
#: Largest study id worth asking the server for (a 64-bit integer column).
MAX_STUDY_ID = 2**63 - 1

F = TypeVar("F", bound=Callable[..., Any])


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
            one_line(
                f"cannot reach tuneforge at {url}: {reason} (gave up after {exc.attempts} "
                "attempt(s); is `tuneforge serve` running? set --url or TUNEFORGE_URL)"
            )
        ) from None
    except Unauthorized as exc:
        raise click.ClickException(one_line(f"{exc} (set TUNEFORGE_API_KEY)")) from None
    except TuneforgeError as exc:
        if not _from_tuneforge(exc):
            raise click.ClickException(
                one_line(f"unexpected reply from {url} (is it a tuneforge server?): {exc}")
            ) from None
        raise click.ClickException(one_line(str(exc))) from None
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


def one_line(text: str, limit: int = 1000) -> str:
    """``text`` with its whitespace collapsed to single spaces, cut to ``limit`` characters."""
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
            one_line(f"{path}: YAML syntax error{where}: {problem}")
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
        raise click.ClickException(one_line(message)) from None
    return spec


def invalid_spec_error(path: Path, exc: InvalidSpec) -> click.ClickException:
    """The one-line error for a spec the server rejected."""
    message = exc.message
    if exc.field and not message.startswith(exc.field):
        message = f"{exc.field}: {message}"
    return click.ClickException(one_line(f"invalid study spec in {path}: {message}"))
