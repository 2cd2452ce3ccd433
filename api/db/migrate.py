"""Schema migrations through Alembic: upgrade, and the check the server runs at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from .engine import build_engine, normalize_url


def _migrations_dir() -> Path:
    from ... import migrations

    return Path(migrations.__file__).resolve().parent


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads; expected exactly one")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (the newest by default)."""
    engine = build_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


class SchemaOutdated(RuntimeError):
    """The database is not at the schema this code expects."""


def check_schema(engine: Engine, url: str) -> None:
    """Raise :class:`SchemaOutdated` naming the command to run when the schema is not at head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        shown = current or "empty"
        raise SchemaOutdated(
            f"the database schema is at {shown}, this server needs {head}: "
            f"run `tuneforge db upgrade --db {url}` or start the server with --migrate"
        )


def prepare_database(url: str, *, migrate: bool) -> None:
    """Upgrade (when ``migrate``) or check the schema before a server starts serving."""
    if migrate:
        upgrade(url)
        return
    engine = build_engine(url)
    try:
        check_schema(engine, url)
    finally:
        engine.dispose()
