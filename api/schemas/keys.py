"""Wire models of API keys and the audit log."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .common import WireModel


class KeyCreate(WireModel):
    """The role of the new key (of the caller's project)."""

    role: Literal["viewer", "editor", "admin"]


class KeyPublic(BaseModel):
    """A key as listings show it: never the key itself, only its public prefix."""

    id: int
    prefix: str = Field(description="the key's first characters, to recognise it")
    project: str | None = Field(description="null for a worker key, which serves every project")
    role: str
    created_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class KeyCreated(KeyPublic):
    """A new key: ``key`` is in this reply only and never shown again."""

    key: str


class KeyList(BaseModel):
    keys: list[KeyPublic]


class AuditEntry(BaseModel):
    """One mutating request: who (key id), when, what (method, route, path), the result."""

    id: int
    at: str
    key_id: int | None = Field(description="null in open mode (no keys)")
    project: str | None
    method: str
    route: str = Field(description="the route template, e.g. /api/v1/studies/{study_id}")
    path: str
    study_id: int | None
    status: int


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_page_token: str | None
