"""Wire shapes shared by every resource: the error body and page tokens."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ...core.errors import InvalidSpec


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: An integer field that also takes a JSON number with a zero fraction (``2.0``), which
#: JSON Schema counts as an integer; other floats are still refused (strict models).
JsonInt = Annotated[int, BeforeValidator(_integral)]

#: What Python's ``str.strip`` removes (``str.isspace``), spelled out: ``\s`` differs
#: between Python and the ECMA regexes of JSON Schema (``\x1c``, ``\x85``, ``\ufeff``).
SPACE = (
    r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a"
    r"\u2028\u2029\u202f\u205f\u3000"
)
#: JSON Schema patterns search: the string holds something besides white space.
NOT_BLANK = f"[^{SPACE}]"
#: A string that neither starts nor ends with white space (``(?![\s\S])``: the end of
#: the string in both dialects, where Python's ``$`` also matches before a last newline).
TRIMMED = f"^[^{SPACE}](?:[\\s\\S]*[^{SPACE}])?(?![\\s\\S])"


def declared(default: Any = ..., **constraints: Any) -> Any:
    """A field whose rules (``minLength``, ``maximum``, ...) core or a service enforces with
    its own message naming the field; they are declared here so the OpenAPI document
    states them too (pydantic does not check them a second time)."""
    description = constraints.pop("description", None)
    return Field(default, description=description, json_schema_extra=constraints)


class WireModel(BaseModel):
    """Base of request bodies: unknown fields are rejected, nothing is coerced silently."""

    model_config = ConfigDict(extra="forbid", strict=True, use_enum_values=True)


class ErrorDetail(BaseModel):
    """What went wrong: a machine code, a message naming the field, and details."""

    code: str = Field(
        description="bad_request, not_found, conflict, payload_too_large, invalid_spec, "
        "temporary, ...; map errors by HTTP status first"
    )
    message: str = Field(description="starts with the offending field when there is one")
    details: dict[str, Any] | None = Field(
        description="``field`` repeats the offending field; other keys depend on the error"
    )


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorDetail


def encode_page_token(after: int | None) -> str | None:
    if after is None:
        return None
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_page_token(token: str | None) -> int | None:
    """The position a page token points after; 422 naming ``page_token`` if it is not ours."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        after = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
    except (ValueError, KeyError, TypeError):
        raise InvalidSpec("is not a page token this server issued", field="page_token") from None
    if isinstance(after, bool) or not isinstance(after, int):
        raise InvalidSpec("is not a page token this server issued", field="page_token")
    return after
