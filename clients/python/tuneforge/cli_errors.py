"""The one error path of every ``tuneforge`` command.

:class:`CliGroup` is the class of the top-level ``tuneforge`` group. Whatever a
command raises — an SDK error, a bad spec file, an error a local trial hit, a
database or file-system error, a click usage error — ends as a single line on
standard error (``Error: ...``) naming the file, line or field and, where there
is one, what to do. Exit codes: 2 for usage errors (an unknown option, a bad
option value), 1 for every other failure, 130 after Ctrl-C.

``--debug`` (on every command) or ``TUNEFORGE_DEBUG=1`` prints the traceback
as well.

Commands give this module context through :func:`remember` (``spec_file``, the
server ``url``); nothing here imports the server: its exception classes are
looked up in ``sys.modules`` only (an instance of a class implies its module is
loaded).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import (
    Conflict,
    ConnectionFailed,
    InvalidSpec,
    TuneforgeError,
    Unauthorized,
)

DEBUG_ENV = "TUNEFORGE_DEBUG"
_META = "tuneforge."
F = TypeVar("F", bound=Callable[..., Any])


class UsageLine(click.ClickException):
    """A usage error shown as one line, with where to get help (exit code 2)."""

    exit_code = 2


class Interrupted(click.ClickException):
    """Ctrl-C, with what to do next (exit code 130, as for SIGINT)."""

    exit_code = 130


class SpecFileError(Exception):
    """A spec file that cannot be read or is not a study spec; ``__cause__`` says why."""

    def __init__(self, path: Path, reason: BaseException) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class TrialError(Exception):
    """The exception a trial raised in a local worker (``tuneforge run`` / ``quickstart``)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def remember(key: str, value: Any) -> None:
    """Record context for error messages (``spec_file``, ``url``) in the current command."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_META + key] = value


def recalled(ctx: click.Context | None, key: str) -> Any:
    return None if ctx is None else ctx.meta.get(_META + key)


def one_line(text: str, limit: int = 1000) -> str:
    """``text`` with its whitespace collapsed to single spaces, cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def debugging(ctx: click.Context | None) -> bool:
    """Whether ``--debug`` was given or ``TUNEFORGE_DEBUG`` is set (to anything but 0)."""
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        return True
    return bool(recalled(ctx, "debug"))


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    ctx.meta[_META + "command"] = ctx.command_path  # the innermost command parses last
    if value:
        ctx.meta[_META + "debug"] = True


def debug_option(func: F) -> F:
    """The ``--debug`` flag (also added to every command by :meth:`CliGroup.add_debug`)."""
    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help=f"Show the traceback of an error (or set {DEBUG_ENV}=1).",
    )(func)


class CliGroup(click.Group):
    """The ``tuneforge`` group: every error of every sub-command is shown as one line."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:  # an unknown option of `tuneforge` itself
            if _shows_help(exc):
                raise
            raise _usage_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.UsageError as exc:
            if _shows_help(exc):  # a group run without a command: its help, as click does
                raise
            if debugging(ctx):
                _print_traceback(exc)
            raise _usage_line(exc) from None
        except Exception as exc:
            if debugging(ctx):
                _print_traceback(exc)
            raise as_click_error(exc, ctx) from None

    def add_debug(self) -> None:
        """Give every command under this group a ``--debug`` flag."""
        _add_debug(self)


def _shows_help(exc: click.UsageError) -> bool:
    """Whether click shows a help page for this error (``tuneforge studies`` alone)."""
    help_error = getattr(click.exceptions, "NoArgsIsHelpError", None)
    return help_error is not None and isinstance(exc, help_error)


def _add_debug(command: click.Command) -> None:
    if not any(p.name == "debug" for p in command.params):
        debug_option(command)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_debug(sub)


def _print_traceback(exc: BaseException) -> None:
    shown = exc
    if isinstance(exc, click.ClickException):  # a command's own message: show what led to it
        shown = exc.__cause__ or exc.__context__ or exc
    traceback.print_exception(type(shown), shown, shown.__traceback__, file=sys.stderr)


def as_click_error(exc: Exception, ctx: click.Context | None) -> click.ClickException:
    """The one-line CLI error for ``exc``."""
    if isinstance(exc, click.UsageError):
        return _usage_line(exc)
    if isinstance(exc, click.ClickException):
        if one_line(exc.message) == exc.message:
            return exc
        kinds = {UsageLine.exit_code: UsageLine, Interrupted.exit_code: Interrupted}
        return kinds.get(exc.exit_code, click.ClickException)(one_line(exc.message))
    return click.ClickException(one_line(describe(exc, ctx)))


def _usage_line(exc: click.UsageError) -> UsageLine:
    help_hint = ""
    if exc.ctx is not None:
        help_hint = f" (see '{exc.ctx.command_path} --help')"
    return UsageLine(one_line(exc.format_message()) + help_hint)


def describe(exc: BaseException, ctx: click.Context | None) -> str:
    """The message for an exception that is not already a click error."""
    if isinstance(exc, SpecFileError):
        return spec_file_message(exc.path, exc.reason)
    if isinstance(exc, TrialError):
        return _trial_message(exc.error, ctx)
    if isinstance(exc, TuneforgeError):
        return sdk_message(exc, ctx)
    core = _core_error(exc)
    if core is not None:
        return core
    if isinstance(exc, OSError):
        return _os_message(exc)
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy is not None and isinstance(exc, sqlalchemy.SQLAlchemyError):
        first = str(exc).splitlines()[0] if str(exc) else ""
        db = recalled(ctx, "db")
        where = f"cannot use the database {db}" if db else "database error"
        return f"{where}: {type(exc).__name__}: {first}"
    return f"{type(exc).__name__}: {exc} (--debug shows the traceback)"


def _in_spec(ctx: click.Context | None) -> str:
    path = recalled(ctx, "spec_file")
    return f"invalid study spec in {path}" if path else "invalid study spec"


def sdk_message(exc: TuneforgeError, ctx: click.Context | None) -> str:
    """An SDK error (a reply of the server, or none) with a hint of what to do."""
    url = recalled(ctx, "url")
    if isinstance(exc, ConnectionFailed):
        cause = exc.__cause__
        reason = f"{type(cause).__name__}: {cause}" if cause is not None else exc.message
        where = url or "the server"
        option = recalled(ctx, "url_option") or "--url or TUNEFORGE_URL"
        return (
            f"cannot reach tuneforge at {where}: {reason} (gave up after {exc.attempts} "
            f"attempt(s); is `tuneforge serve` running there? check {option})"
        )
    if isinstance(exc, Unauthorized):
        return f"{exc} (set TUNEFORGE_API_KEY)"
    if exc.status is not None and exc.code.startswith("http_"):  # not tuneforge's error shape
        return f"unexpected reply from {url or 'the server'} (is it a tuneforge server?): {exc}"
    if isinstance(exc, InvalidSpec):
        message = exc.message
        if exc.field and not message.startswith(exc.field):
            message = f"{exc.field}: {message}"
        return f"{_in_spec(ctx)}: {message}"
    if isinstance(exc, Conflict) and isinstance(exc.details, dict) and "study_id" in exc.details:
        return f"{exc.message}; {_name_taken_hint(ctx, url, 'different spec' in exc.message)}"
    return str(exc)


def _name_taken_hint(ctx: click.Context | None, url: str | None, returned: bool) -> str:
    """What to do when a study of that name exists with a different spec."""
    name = recalled(ctx, "study_name") or "NAME"
    command = recalled(ctx, "command") or ""
    delete = f"`tuneforge studies delete {name}{recalled(ctx, 'url_flag') or ''}`"
    if command.endswith(" run"):
        spec = recalled(ctx, "spec_file") or "SPEC_FILE"
        rename = f"run it under another name (`tuneforge run {spec} --rename NEW`)"
        if url:
            return f"{rename}, or delete the old study first ({delete})"
        db = recalled(ctx, "db") or "tuneforge.db"
        return (
            f"{rename}, use another --db file, or delete the old study first "
            f"(`tuneforge serve --db sqlite:///{db}`, then {delete})"
        )
    if command.endswith("studies create"):
        reuse = "" if returned else "`--if-exists return` reuses a study with the same spec; "
        return f"{reuse}change `name:` in the file, or delete the old study first ({delete})"
    return f"pick another name, or delete the old study first ({delete})"


def _core_error(exc: BaseException) -> str | None:
    """The message of a server-side error raised in this process (embedded server, local
    trials): ``field: message`` for spec errors."""
    module = sys.modules.get("tuneforge.core.errors")
    if module is None or not isinstance(exc, module.TuneforgeError):
        return None
    if isinstance(exc, module.InvalidSpec):
        return f"{_in_spec(click.get_current_context(silent=True))}: {exc}"
    return str(exc)


def _trial_message(error: BaseException, ctx: click.Context | None) -> str:
    core = _core_error(error)
    if core is not None:
        return core
    if isinstance(error, TuneforgeError):
        return sdk_message(error, ctx)
    return f"a trial failed: {type(error).__name__}: {error} (--debug shows the traceback)"


def _os_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason


def spec_file_message(path: Path, reason: BaseException) -> str:
    """Why the spec file at ``path`` cannot be used, naming the line and column when known."""
    yaml = sys.modules.get("yaml")
    if isinstance(reason, FileNotFoundError):
        return f"spec file {path} does not exist"
    if isinstance(reason, OSError):
        return f"cannot read spec file {path}: {reason.strerror or reason}"
    if yaml is not None and isinstance(reason, yaml.YAMLError):
        mark = getattr(reason, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(reason, "problem", None) or str(reason)
        return f"{path}{where}: YAML syntax error: {problem}"
    if isinstance(reason, json.JSONDecodeError):
        return f"{path}:{reason.lineno}:{reason.colno}: JSON syntax error: {reason.msg}"
    if isinstance(reason, UnicodeDecodeError):
        return f"{path}: not UTF-8 text"
    message = str(reason)
    if isinstance(reason, TypeError):  # from json.dumps: a YAML date, set, ...
        message += " (quote it in the spec file)"
    return message if message.startswith(str(path)) else f"{path}: {message}"
