"""Projects and API keys: create, list, revoke, and check a presented key.

A key reads ``tf_<id>_<secret>``: ``<id>`` finds its row with one primary-key
lookup, ``<secret>`` is ``secrets.token_urlsafe(32)`` (256 random bits). Only
the SHA-256 of the whole key is stored, with a display prefix (``tf_<id>_``
and four characters of the secret). A slow password hash (bcrypt, argon2)
protects low-entropy secrets against guessing after a database leak; a
256-bit random secret cannot be guessed either way, so one SHA-256 is enough
and keeps every request's check to microseconds. Comparison is constant-time.

Keys are never deleted, only revoked: the server's mode (open while no key
exists, keys required once one does) cannot fall back to open by revoking.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, bindparam, func, select, update

from ...core.errors import Conflict, InvalidSpec, NotFound
from ..db import driver
from ..db.engine import Database
from ..db.models import ApiKeyRow, ProjectRow, StudyRow
from ..db.repository import utcnow

KEY_PREFIX = "tf"
#: ``last_used_at`` is written at most this often per key (one write, not one per request).
LAST_USED_EVERY = timedelta(seconds=60)
MAX_PROJECT_NAME = 200


class Role(StrEnum):
    """What a key may do. viewer < editor < admin within one project; ``worker`` keys
    belong to no project and may only run trials (see :mod:`tuneforge.api.auth`)."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    WORKER = "worker"


@dataclass(frozen=True)
class KeyInfo:
    """A valid (not revoked) key: its id, project (None for worker keys) and role."""

    id: int
    project_id: int | None
    role: Role


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()


def _key_id(key: str) -> int | None:
    """The id a presented key claims (``tf_<id>_<secret>``), or None when it is not one."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[2]:
        return None
    if not (parts[1].isascii() and parts[1].isdigit()) or len(parts[1]) > 10:
        return None
    return int(parts[1])


@dataclass(frozen=True)
class Caller:
    """What one request's authentication read found (see :func:`look_up`)."""

    #: Whether any key exists (None when the caller already knew the server is keyed).
    keyed: bool | None
    #: The presented key's identity when it is valid; None otherwise.
    key: KeyInfo | None
    #: The project of the study the request names (None: no such study, or none named).
    study_project: int | None


#: What authentication reads of a presented key.
KEY_COLUMNS = (
    ApiKeyRow.id,
    ApiKeyRow.project_id,
    ApiKeyRow.role,
    ApiKeyRow.key_hash,
    ApiKeyRow.revoked_at,
    ApiKeyRow.last_used_at,
)


def _owner() -> Any:
    """The project of the study ``:study_id`` (a scalar subquery labelled ``owner``)."""
    study = StudyRow.id == bindparam("study_id")
    return select(StudyRow.project_id).where(study).scalar_subquery().label("owner")


def _first_read(keyed: bool, owner: bool) -> Select[Any]:
    """Whether any key exists and the project of the study ``:study_id``, in one row."""
    columns = []
    if keyed:
        columns.append(select(ApiKeyRow.id).limit(1).scalar_subquery().label("any_key"))
    if owner:
        columns.append(_owner())
    return select(*columns)


#: The statements of :func:`look_up`, built once: a statement built per request costs
#: SQLAlchemy its construction and cache key on every call (the compiled form is reused).
_FIRST_READ = {
    (keyed, owner): _first_read(keyed, owner)
    for keyed in (True, False)
    for owner in (True, False)
    if keyed or owner
}
_KEY_READ = select(*KEY_COLUMNS).where(ApiKeyRow.id == bindparam("key_id"))
#: A keyed server's usual read: the presented key and the project of ``:study_id`` in one
#: row (no row when no key has that id: the request is refused whatever the study's project).
_KEY_AND_OWNER_READ = select(*KEY_COLUMNS, _owner()).where(ApiKeyRow.id == bindparam("key_id"))


def look_up(
    db: Database, key: str | None, study_id: int | None, *, check_keyed: bool = True
) -> Caller:
    """Everything a request's authorization reads, in one statement or two, each its own
    autocommit transaction (:func:`.driver.run`): whether the server has keys
    (``check_keyed``) and the project of ``study_id`` in one, the presented ``key``
    (None: no header) in the other; both in one when the caller knows the server has
    keys and a study is named. Nothing is cached, so a new or revoked key counts on the
    very next request. Records ``last_used_at`` at most once per :data:`LAST_USED_EVERY`."""
    key_id = _key_id(key) if key is not None else None
    if key_id is not None and key_id > 2**31 - 1:
        key_id = None
    keyed, project, found = None, None, None
    if key_id is not None and study_id is not None and not check_keyed:
        params = {"key_id": key_id, "study_id": study_id}
        found = _first(driver.run(db, _KEY_AND_OWNER_READ, params))
        project = found.owner if found is not None else None
    else:
        first = _FIRST_READ.get((check_keyed, study_id is not None))
        if first is not None:
            params = {"study_id": study_id} if study_id is not None else {}
            row = driver.run(db, first, params)[0]
            keyed = row.any_key is not None if check_keyed else None
            project = row.owner if study_id is not None else None
        if key_id is not None:
            found = _first(driver.run(db, _KEY_READ, {"key_id": key_id}))
    info = None
    if (
        found is not None
        and found.revoked_at is None
        and hmac.compare_digest(found.key_hash, hash_key(key or ""))
    ):
        info = KeyInfo(found.id, found.project_id, Role(found.role))
        _note_use(db, info.id, found.last_used_at)
    return Caller(keyed=keyed, key=info, study_project=project)


def _first(rows: list[Any]) -> Any:
    return rows[0] if rows else None


def authenticate(db: Database, key: str) -> KeyInfo | None:
    """The key's identity when ``key`` is a known, unrevoked key; None otherwise.

    Reads the database on every call (no cache), so a revoked key fails on the very
    next request. Records ``last_used_at`` at most once per :data:`LAST_USED_EVERY`.
    """
    return look_up(db, key, None, check_keyed=False).key


def _note_use(db: Database, key_id: int, last_used: datetime | None) -> None:
    now = utcnow()
    if last_used is None or now - last_used >= LAST_USED_EVERY:
        with db.write() as session:
            session.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=now)
            )


def any_key_exists(db: Database) -> bool:
    """True once any key was ever created (revoked ones count: revoking never reopens)."""
    with db.read() as session:
        return session.scalar(select(ApiKeyRow.id).limit(1)) is not None


# ---------------------------------------------------------------- projects


def create_project(db: Database, name: str) -> dict[str, Any]:
    """Add a project; a name already taken is a conflict."""
    if not name or len(name) > MAX_PROJECT_NAME or not name.isprintable():
        raise InvalidSpec(f"must be 1 to {MAX_PROJECT_NAME} printable characters", field="project")
    with db.write() as session:
        if session.scalar(select(ProjectRow.id).where(ProjectRow.name == name)) is not None:
            raise Conflict(f"a project named {name!r} already exists", field="project")
        row = ProjectRow(name=name, created_at=utcnow())
        session.add(row)
        session.flush()
        return {"id": row.id, "name": row.name, "created_at": _iso(row.created_at), "studies": 0}


def list_projects(db: Database) -> list[dict[str, Any]]:
    """Every project with its number of studies and of unrevoked keys, oldest first."""
    with db.read() as session:
        studies = dict(
            session.execute(
                select(StudyRow.project_id, func.count()).group_by(StudyRow.project_id)
            ).all()
        )
        keys = dict(
            session.execute(
                select(ApiKeyRow.project_id, func.count())
                .where(ApiKeyRow.revoked_at.is_(None))
                .group_by(ApiKeyRow.project_id)
            ).all()
        )
        rows = session.scalars(select(ProjectRow).order_by(ProjectRow.id)).all()
        return [
            {
                "id": r.id,
                "name": r.name,
                "created_at": _iso(r.created_at),
                "studies": studies.get(r.id, 0),
                "keys": keys.get(r.id, 0),
            }
            for r in rows
        ]


def project_id_of(db: Database, name: str) -> int:
    """The id of the project called ``name`` (404 naming ``project`` when there is none)."""
    with db.read() as session:
        pid = session.scalar(select(ProjectRow.id).where(ProjectRow.name == name))
    if pid is None:
        raise NotFound(f"no project named {name!r}", field="project")
    return pid


# ---------------------------------------------------------------- keys


def create_key(db: Database, project: str | None, role: str) -> tuple[dict[str, Any], str]:
    """A new key for ``project`` with ``role``; returns its listing entry and the key itself
    (the only time the key exists outside the caller's hands)."""
    parsed = _role(role)
    if parsed == Role.WORKER and project is not None:
        raise InvalidSpec("worker keys serve every project; give no project", field="project")
    if parsed != Role.WORKER and project is None:
        raise InvalidSpec(f"{parsed.value} keys need a project", field="project")
    project_id = project_id_of(db, project) if project is not None else None
    return _insert_key(db, project_id, project, parsed)


def create_project_key(db: Database, project_id: int, role: str) -> tuple[dict[str, Any], str]:
    """A new viewer, editor or admin key of the project ``project_id`` (what an admin key
    may create over HTTP; worker keys are the operator's, from the command line)."""
    parsed = _role(role)
    if parsed == Role.WORKER:
        raise InvalidSpec("worker keys are created with `tuneforge keys create`", field="role")
    with db.read() as session:
        name = session.scalar(select(ProjectRow.name).where(ProjectRow.id == project_id))
    if name is None:
        raise NotFound(f"project {project_id} does not exist", field="project")
    return _insert_key(db, project_id, name, parsed)


def _role(raw: str) -> Role:
    try:
        return Role(raw)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise InvalidSpec(f"must be one of {names}", field="role") from None


def _insert_key(
    db: Database, project_id: int | None, project: str | None, role: Role
) -> tuple[dict[str, Any], str]:
    with db.write() as session:
        row = ApiKeyRow(
            project_id=project_id, role=role.value, prefix="", key_hash="", created_at=utcnow()
        )
        session.add(row)
        session.flush()
        key = f"{KEY_PREFIX}_{row.id}_{secrets.token_urlsafe(32)}"
        row.key_hash = hash_key(key)
        row.prefix = key[: len(f"{KEY_PREFIX}_{row.id}_") + 4]
        session.flush()
        entry = _entry(row, project)
    return entry, key


def list_keys(
    db: Database, project: str | None = None, *, project_id: int | None = None
) -> list[dict[str, Any]]:
    """Every key (revoked ones too), oldest first, without the key: id, prefix, project,
    role, created, last used, revoked. ``project`` (a name) or ``project_id`` narrow it."""
    with db.read() as session:
        stmt = select(ApiKeyRow, ProjectRow.name).outerjoin(
            ProjectRow, ProjectRow.id == ApiKeyRow.project_id
        )
        if project is not None:
            stmt = stmt.where(ProjectRow.name == project)
        if project_id is not None:
            stmt = stmt.where(ApiKeyRow.project_id == project_id)
        rows = session.execute(stmt.order_by(ApiKeyRow.id)).all()
        return [_entry(row, name) for row, name in rows]


def revoke_key(db: Database, key_id: int, *, project_id: int | None = None) -> dict[str, Any]:
    """Revoke a key (at once: keys are checked on every request). Revoking twice is a no-op.
    With ``project_id``, a key of another project is unknown (404)."""
    with db.write() as session:
        row = session.get(ApiKeyRow, key_id)
        if row is None or (project_id is not None and row.project_id != project_id):
            raise NotFound(f"key {key_id} does not exist", field="key_id")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        name = session.scalar(select(ProjectRow.name).where(ProjectRow.id == row.project_id))
        return _entry(row, name)


def _entry(row: ApiKeyRow, project: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "prefix": row.prefix,
        "project": project,
        "role": row.role,
        "created_at": _iso(row.created_at),
        "last_used_at": _iso(row.last_used_at),
        "revoked_at": _iso(row.revoked_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
