"""Server settings from ``TUNEFORGE_*`` environment variables (CLI flags override them)."""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..core.policy import ANY_MODULE, comma_list
from ..core.policy_settings import PolicySettings

DEFAULT_DB_URL = "sqlite:///./tuneforge.db"
#: Every endpoint ``TUNEFORGE_PUBLIC_ENDPOINTS`` may name (all public by default).
PUBLIC_ENDPOINTS = ("metrics", "docs", "redoc", "openapi")


class Settings(PolicySettings, BaseSettings):
    """Everything the API server needs; nothing connects until ``create_app`` starts."""

    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", extra="ignore")

    db_url: str = DEFAULT_DB_URL
    host: str = "127.0.0.1"
    port: int = 8000
    #: Upgrade the schema at start instead of refusing to run on an old one.
    migrate: bool = False
    #: Largest request body accepted, in bytes (larger ones get 413).
    max_body_bytes: int = 4 * 1024 * 1024
    #: Where checkpoints (and other large files) are kept: a directory or any fsspec URL.
    #: Unset: a ``tuneforge-artifacts`` folder beside the SQLite file, or in the working
    #: directory. Replicas of a team server must share one location.
    artifact_url: str | None = None
    #: Largest trial checkpoint accepted, in bytes (larger ones get 413, nothing is stored).
    max_checkpoint_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    #: Largest uploaded dataset accepted, in bytes (``POST /datasets``; larger ones get 413,
    #: nothing is stored). Files beyond it belong under the operator's data roots.
    max_dataset_bytes: int = Field(default=1024 * 1024 * 1024, ge=1)
    #: How often the reconciler runs: expires leases, keeps managed studies' tasks
    #: in flight, revokes tasks of paused studies (seconds; 0 turns it off).
    reconcile_interval_seconds: float = 2.0
    #: Celery broker the server sends managed studies' tasks to.
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: An unclaimed task older than this is presumed lost (broker restart) and replaced.
    dispatch_ttl_seconds: float = 120.0
    #: A task no worker has claimed this long, and which the broker no longer holds
    #: (Redis restarted empty), is replaced at once instead of waiting for the TTL.
    dispatch_claim_seconds: float = Field(default=10.0, gt=0)
    #: Parallel trials of a managed study that does not set max_active_trials.
    default_parallelism: int = 4
    db_pool_size: int = 10
    #: Child processes that run the Gaussian-process fits (``auto``, ``gp``, ``ehvi``) so
    #: they never hold this process's interpreter lock (api/services/fit_pool.py); 0 fits
    #: in the server's own process (the embedded server of ``tuneforge.local`` does).
    fit_processes: int = Field(default=1, ge=0, le=64)
    #: Spare points a busy TPE study keeps fitted ahead of its suggests, per server
    #: process (api/services/suggest_spare.py: at most 1% of the study's results); 0: none.
    spare_points: int = Field(default=32, ge=0, le=256)
    #: Serve the four calls of every trial without FastAPI's per-request dependency
    #: solving when they bind cleanly (api/hot_routes.py); off: every request through
    #: FastAPI's routes (the replies are the same).
    hot_routes: bool = True
    #: Threads that run the blocking work of requests (database calls, the algorithm), per
    #: pool: one for most routes, one for complete and fail, one for suggest (api/threads.py).
    #: Not many: one runs Python at a time, and a thread that holds a study's row lock
    #: waits for the interpreter lock behind every other running thread; but the default
    #: pool also runs every request's authorization read, so too few make measurements
    #: queue for a thread (docs/performance.md, "Row locks and thread pools").
    threads: int = Field(default=16, ge=1, le=256)
    log_level: str = "info"
    #: ``text`` (default) or ``json``: one JSON object per log line, with the request id.
    log_format: Literal["text", "json"] = "text"

    @field_validator("public_endpoints", mode="before")
    @classmethod
    def _public_endpoints(cls, value: object) -> object:
        names = comma_list(value)
        if isinstance(names, tuple | list):
            names = tuple(n.lower() for n in names if n.lower() != "none")
            unknown = sorted(set(names) - set(PUBLIC_ENDPOINTS))
            if unknown:
                raise ValueError(
                    f"unknown endpoint {unknown[0]!r}; known: metrics, docs, redoc, openapi"
                )
        return names

    def artifact_location(self) -> str:
        """``artifact_url``, or the default location for this database."""
        from .artifacts import default_artifact_url

        return self.artifact_url or default_artifact_url(self.db_url)

    def for_local_user(self, working_directory: str | None = None) -> Settings:
        """These settings for a server only its own user reaches (the embedded one of
        ``tuneforge run`` and ``tuneforge.local``): python objectives from any module, the
        working directory as the first data root (before ``TUNEFORGE_DATA_ROOTS``) and no
        rate limit (its one user's own loop is all it serves), and fits in its own process."""
        cwd = os.path.abspath(working_directory or os.getcwd())
        roots = (cwd, *(r for r in self.data_roots if os.path.abspath(r) != cwd))
        return self.model_copy(
            update={
                "python_objective_modules": (ANY_MODULE,),
                "data_roots": roots,
                "rate_limit_per_second": 0.0,
                # a child process would import the user's script again (spawn)
                "fit_processes": 0,
            }
        )

    # ---- limits and exposure (docs/deploy.md, "Limits" and "Public endpoints") -------
    #: Requests per second each API key may make (``worker`` keys: unlimited); each client
    #: address without a valid key (not in open mode on loopback). 0 turns the limit off.
    rate_limit_per_second: float = Field(default=100.0, ge=0)
    #: Requests a caller may make at once before the per-second rate applies.
    rate_limit_burst: int = Field(default=200, ge=1)
    #: ``max_failed_trials`` given to a managed study (one with an ``objective``) whose
    #: spec sets none; 0 gives none.
    default_max_failed_trials: int = Field(default=20, ge=0)
    #: Which of ``metrics``, ``docs``, ``redoc`` and ``openapi`` (``/openapi.json``) answer
    #: without a key when the server has keys (all four by default; empty or ``none``: none).
    public_endpoints: Annotated[tuple[str, ...], NoDecode] = PUBLIC_ENDPOINTS
