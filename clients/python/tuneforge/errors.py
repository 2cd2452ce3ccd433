"""The SDK's exceptions: one class per kind of failure, all under :class:`TuneforgeError`.

Every error carries the HTTP ``status`` (``None`` when no reply arrived), the
server's machine ``code``, its human ``message`` and ``details``, and how many
``attempts`` the client made before giving up.
"""

from __future__ import annotations

from typing import Any


class TuneforgeError(Exception):
    """Base class of every error the tuneforge SDK raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        details: Any = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details
        self.attempts = attempts

    def __str__(self) -> str:
        prefix = f"{self.status} {self.code}" if self.status is not None else self.code
        return f"{prefix}: {self.message}"


class BadRequest(TuneforgeError):
    """400 (or another unexpected 4xx): the server could not read the request."""


class Unauthorized(TuneforgeError):
    """401: missing or wrong API key (``TUNEFORGE_API_KEY``)."""


class Forbidden(TuneforgeError):
    """403: the key is valid but may not do this in this project."""


class NotFound(TuneforgeError):
    """404: unknown study or trial."""


class Conflict(TuneforgeError):
    """409: the request does not fit the current state (finished trial, paused study, name taken)."""

    @property
    def trial_state(self) -> str | None:
        """The trial's state when the conflict is about a trial (``details.trial_state``)."""
        if isinstance(self.details, dict):
            state = self.details.get("trial_state")
            return state if isinstance(state, str) else None
        return None


class PayloadTooLarge(TuneforgeError):
    """413: the request body is larger than the server accepts."""


class InvalidSpec(TuneforgeError):
    """422: a spec, parameter set or value breaks a rule; the message names the field."""

    @property
    def field(self) -> str | None:
        """The offending field (``parameters[2].low``) when the server named one."""
        if isinstance(self.details, dict):
            field = self.details.get("field")
            return field if isinstance(field, str) else None
        return None


class RateLimited(TuneforgeError):
    """429 that outlasted the retry budget."""


class ServerError(TuneforgeError):
    """5xx (or 408) from the server, after retries where a retry was safe."""


class ConnectionFailed(TuneforgeError):
    """No reply arrived (refused, reset, timed out) within the retry budget."""


class NoTrialAvailable(TuneforgeError):
    """``suggest_one`` got no trial: the study is finished or paused, or waiting timed out.

    ``study_state`` says which: ``completed`` / ``paused``, or ``active`` when
    every slot stayed busy for the whole wait.
    """

    def __init__(self, message: str, *, study_state: str) -> None:
        super().__init__(message, code="no_trial", details={"study_state": study_state})
        self.study_state = study_state


class TrialPruned(Exception):
    """Raise inside an objective (or a ``with trial:`` block) to end a trial that should stop.

    The trial is completed with the values it last reported, which the server
    records as ``pruned`` when its early-stopping rule asked for the stop.
    """


_BY_STATUS: dict[int, type[TuneforgeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    408: ServerError,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidSpec,
    429: RateLimited,
}


def error_class(status: int) -> type[TuneforgeError]:
    """The exception class for an HTTP error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else BadRequest


def error_from_reply(status: int, body: Any, text: str, attempts: int = 1) -> TuneforgeError:
    """Build the exception for an error reply; ``body`` is the parsed JSON (or ``None``)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or f"http_{status}")
        message = str(error.get("message") or text[:500])
        details = error.get("details")
    else:
        code, message, details = f"http_{status}", text[:500] or f"HTTP {status}", None
    return error_class(status)(
        message, status=status, code=code, details=details, attempts=attempts
    )
