"""Server settings from ``TUNEFORGE_*`` environment variables (CLI flags override them)."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_URL = "sqlite:///./tuneforge.db"


class Settings(BaseSettings):
    """Everything the API server needs; nothing connects until ``create_app`` starts."""

    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", extra="ignore")

    db_url: str = DEFAULT_DB_URL
    host: str = "127.0.0.1"
    port: int = 8000
    #: Upgrade the schema at start instead of refusing to run on an old one.
    migrate: bool = False
    #: Largest request body accepted, in bytes (larger ones get 413).
    max_body_bytes: int = 4 * 1024 * 1024
    #: How often the reconciler runs: expires leases, keeps managed studies' tasks
    #: in flight, revokes tasks of paused studies (seconds; 0 turns it off).
    reconcile_interval_seconds: float = 2.0
    #: Celery broker the server sends managed studies' tasks to.
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: An unclaimed task older than this is presumed lost (broker restart) and replaced.
    dispatch_ttl_seconds: float = 120.0
    #: Parallel trials of a managed study that does not set max_active_trials.
    default_parallelism: int = 4
    db_pool_size: int = 10
    log_level: str = "info"
    #: ``text`` (default) or ``json``: one JSON object per log line, with the request id.
    log_format: Literal["text", "json"] = "text"
