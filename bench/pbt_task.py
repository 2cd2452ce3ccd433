"""The PBT benchmark's task: linear regression trained by SGD epochs, where the best learning
rate falls during training.

``SGDRegressor`` (constant step ``eta0``, L2 penalty ``alpha``) learns a noisy
linear target whose 40 features are correlated (their covariance spreads over
two decades of scale), so the loss surface is ill-conditioned. A large step
makes fast progress along the steep directions and then rattles around the
optimum at a noise floor that grows with the step; a small one reaches a low
floor but crawls along the flat directions, too slowly for the epoch budget.
A step that falls during training does both, so the best ``eta0`` changes as
training goes on: early a large one, late a small one. A constant step cannot
follow that; PBT's exploit/explore can. The score is the mean squared error on
held-out rows (lower is better; the noise alone gives 1.0).

One epoch is one ``partial_fit`` pass over the 14,000 training rows. New params
take effect at the next epoch (``set_params``); the weights and the epoch count
carry on.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

METRIC = "mse"
GOAL = "minimize"
PARAMETERS = (
    {"name": "eta0", "type": "float", "low": 1e-5, "high": 1e-2, "scale": "log"},
    {"name": "alpha", "type": "float", "low": 1e-7, "high": 1e-1, "scale": "log"},
)
#: What a diverged model scores (a finite number the API accepts).
WORST = 1e6


@dataclass(frozen=True)
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@functools.cache
def data() -> Split:
    """The task's fixed data: 14,000 training, 3,000 validation and 3,000 test rows."""
    rng = np.random.default_rng(0)
    n, d = 20_000, 40
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    X = (rng.normal(size=(n, d)) * np.logspace(0, -2, d)) @ rotation.T
    X /= X.std(axis=0)
    y = X @ rng.normal(size=d) + rng.normal(scale=1.0, size=n)
    return Split(X[:14_000], y[:14_000], X[14_000:17_000], y[14_000:17_000], X[17_000:], y[17_000:])


@dataclass
class Model:
    """A regressor and how many epochs it trained."""

    net: Any
    epochs: int = 0


def start(params: dict[str, Any], seed: int) -> Model:
    """A fresh regressor for ``params`` (``seed``: its shuffling)."""
    from sklearn.linear_model import SGDRegressor

    return Model(SGDRegressor(learning_rate="constant", random_state=seed, **params))


def set_params(model: Model, params: dict[str, Any]) -> None:
    """New params from the next epoch on."""
    model.net.set_params(**params)


def train_epoch(model: Model) -> float:
    """One ``partial_fit`` pass over the training rows; the validation error after it."""
    d = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.net.partial_fit(d.X_train, d.y_train)
    model.epochs += 1
    return valid_score(model)


def _mse(model: Model, X: np.ndarray, y: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        error = float(np.mean((model.net.predict(X) - y) ** 2))
    return min(error, WORST) if np.isfinite(error) else WORST


def valid_score(model: Model) -> float:
    d = data()
    return _mse(model, d.X_valid, d.y_valid)


def test_score(model: Model) -> float:
    d = data()
    return _mse(model, d.X_test, d.y_test)
