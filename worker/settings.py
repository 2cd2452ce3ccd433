"""Worker settings from ``TUNEFORGE_*`` environment variables."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..core.policy import ObjectivePolicy, comma_list


class WorkerSettings(BaseSettings):
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
    #: What a spec may name (as on the server; docs/deploy.md, "Security").
    python_objective_modules: Annotated[tuple[str, ...], NoDecode] = ()
    estimators: Annotated[tuple[str, ...], NoDecode] = ()
    data_roots: Annotated[tuple[str, ...], NoDecode] = ()
    data_url_schemes: Annotated[tuple[str, ...], NoDecode] = ()
    max_n_jobs: int = 1

    @field_validator(
        "python_objective_modules", "estimators", "data_roots", "data_url_schemes", mode="before"
    )
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return comma_list(value)

    def objective_policy(self) -> ObjectivePolicy:
        """What this worker runs: modules, estimators, data roots and URL schemes."""
        return ObjectivePolicy(
            python_modules=self.python_objective_modules,
            estimators=self.estimators,
            data_roots=tuple(os.path.abspath(os.path.expanduser(r)) for r in self.data_roots),
            url_schemes=self.data_url_schemes,
            max_n_jobs=self.max_n_jobs,
        )


def local_policy(working_directory: str | None = None) -> ObjectivePolicy:
    """The policy of a local run (``tuneforge run``, ``tuneforge quickstart``): the user's
    own code on the user's own machine, so any python module, with the working directory
    as the first data root (then ``TUNEFORGE_DATA_ROOTS``)."""
    cwd = os.path.abspath(working_directory or os.getcwd())
    return WorkerSettings().objective_policy().trusting_local_user(cwd)
