"""Worker settings from ``TUNEFORGE_*`` environment variables."""

from __future__ import annotations

import os

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..core.policy import ObjectivePolicy
from ..core.policy_settings import PolicySettings


class WorkerSettings(PolicySettings, BaseSettings):
    """Where the server and the broker are, and the limits every task runs under.

    The time limits sit below the broker's visibility timeout, so Redis never
    redelivers a task that is still running. The worker checks every objective
    against its own policy (the same ``TUNEFORGE_*`` settings as the server's)
    before it imports or reads anything a spec names.
    """

    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", extra="ignore")

    server_url: str = Field(
        default="http://127.0.0.1:8000",
        validation_alias=AliasChoices("TUNEFORGE_SERVER_URL", "TUNEFORGE_URL"),
    )
    api_key: str | None = None
    broker_url: str = "redis://127.0.0.1:6379/0"
    soft_time_limit_seconds: int = 3000
    time_limit_seconds: int = 3300
    visibility_timeout_seconds: int = 3600
    #: BLAS / OpenMP threads per training process (N workers on N cores do not oversubscribe).
    blas_threads: int = 1
    #: Retries of a task that met a transient error (server unreachable, 5xx).
    task_max_retries: int = 5
    #: Where workers keep downloaded datasets, one file per fingerprint (unset: a
    #: ``tuneforge-datasets`` folder in the system's temporary directory).
    dataset_cache_dir: str | None = None


def local_policy(working_directory: str | None = None) -> ObjectivePolicy:
    """The policy of a local run (``tuneforge run``, ``tuneforge quickstart``): the user's
    own code on the user's own machine, so any python module, with the working directory
    as the first data root (then ``TUNEFORGE_DATA_ROOTS``)."""
    cwd = os.path.abspath(working_directory or os.getcwd())
    return WorkerSettings().objective_policy().trusting_local_user(cwd)
