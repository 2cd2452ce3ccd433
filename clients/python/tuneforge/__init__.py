"""tuneforge: a hyperparameter tuning service. This package is the SDK users import.

::

    import tuneforge

    client = tuneforge.Client()  # TUNEFORGE_URL, or an embedded server on ./tuneforge.db
    study = client.create_study(
        name="demo",
        parameters=[{"name": "x", "type": "float", "low": -5, "high": 5}],
        metrics=[{"name": "loss", "goal": "minimize"}],
        max_trials=20,
    )
    study.optimize(lambda trial: (trial.params["x"] - 2) ** 2, n_workers=2)

Importing it loads only httpx and pydantic; the server, rich, cloudpickle and
pandas are imported when a feature needs them.
"""

from ._core import RetryPolicy
from ._version import __version__
from .async_client import AsyncClient
from .async_handles import AsyncStudy, AsyncTrial
from .client import Client
from .embedded import EmbeddedServer, local
from .errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidSpec,
    NotFound,
    NoTrialAvailable,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    TrialPruned,
    TuneforgeError,
    Unauthorized,
)
from .handles import Study, Trial
from .models import (
    DatasetData,
    HeartbeatReply,
    ImportanceReply,
    Measurement,
    MeasureReply,
    StudyData,
    SuggestReply,
    TrialData,
)
from .optimize import OptimizeResult

__all__ = [
    "AsyncClient",
    "AsyncStudy",
    "AsyncTrial",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "DatasetData",
    "EmbeddedServer",
    "Forbidden",
    "HeartbeatReply",
    "ImportanceReply",
    "InvalidSpec",
    "MeasureReply",
    "Measurement",
    "NoTrialAvailable",
    "NotFound",
    "OptimizeResult",
    "PayloadTooLarge",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "Study",
    "StudyData",
    "SuggestReply",
    "Trial",
    "TrialData",
    "TrialPruned",
    "TuneforgeError",
    "Unauthorized",
    "__version__",
    "local",
]
