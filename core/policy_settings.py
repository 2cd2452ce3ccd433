"""The operator's settings of what a study spec may name, shared by the server's
``Settings`` and the workers' ``WorkerSettings``.

Both read the same ``TUNEFORGE_*`` variables (docs/deploy.md, "Security") the same
way: lists as ``a, b, c``. This is a plain pydantic model mixed into both settings
classes; it reads nothing itself.
"""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import BaseModel, field_validator
from pydantic_settings import NoDecode

from .policy import ObjectivePolicy, comma_list


class PolicySettings(BaseModel):
    """Fields and the :class:`ObjectivePolicy` they make."""

    #: Modules (or packages) whose functions ``objective.kind: python`` may call; none by
    #: default. ``*`` allows any module: only for a server nobody else can reach.
    python_objective_modules: Annotated[tuple[str, ...], NoDecode] = ()
    #: Estimator class paths allowed besides the default list (public scikit-learn
    #: classifiers and regressors that take no other estimator; xgboost, lightgbm).
    estimators: Annotated[tuple[str, ...], NoDecode] = ()
    #: Directories csv/parquet files must lie under (none: no data files, only bundled data).
    data_roots: Annotated[tuple[str, ...], NoDecode] = ()
    #: URL schemes a dataset path may use (``https``, ``s3``); none by default.
    data_url_schemes: Annotated[tuple[str, ...], NoDecode] = ()
    #: The largest ``n_jobs`` an estimator may be given.
    max_n_jobs: int = 1

    @field_validator(
        "python_objective_modules", "estimators", "data_roots", "data_url_schemes", mode="before"
    )
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return comma_list(value)

    def objective_policy(self) -> ObjectivePolicy:
        """What managed objectives may name here: modules, estimators, data roots, URLs."""
        return ObjectivePolicy(
            python_modules=self.python_objective_modules,
            estimators=self.estimators,
            data_roots=tuple(os.path.abspath(os.path.expanduser(r)) for r in self.data_roots),
            url_schemes=self.data_url_schemes,
            max_n_jobs=self.max_n_jobs,
        )
