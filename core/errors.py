"""The one exception hierarchy of tuneforge's engine.

Every error says whether retrying the same request can help (``retryable``) and
carries a machine ``code`` that the API maps to its error body. ``field`` names
the offending input (``parameters[2].low``) when there is one.
"""

from __future__ import annotations

from typing import Any


class TuneforgeError(Exception):
    """Base class of every error raised by tuneforge's engine and service."""

    code = "error"
    retryable = False

    def __init__(self, message: str, *, field: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidSpec(TuneforgeError):
    """A study spec, parameter set or value breaks a rule (HTTP 422)."""

    code = "invalid_spec"


class BadRequest(TuneforgeError):
    """The request itself is malformed (HTTP 400)."""

    code = "bad_request"


class NotFound(TuneforgeError):
    """An unknown study, trial or resource (HTTP 404)."""

    code = "not_found"


class Conflict(TuneforgeError):
    """The request does not fit the current state: finished trial, duplicate name (HTTP 409)."""

    code = "conflict"


class Temporary(TuneforgeError):
    """A transient failure (database busy, lock timeout); the same request may succeed later."""

    code = "temporary"
    retryable = True
