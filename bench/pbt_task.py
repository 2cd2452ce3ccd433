"""The PBT benchmark's task: an MLP trained by SGD epochs, where the best learning rate and
regularization change during training.

A one-hidden-layer ``MLPClassifier`` (solver ``sgd``, momentum 0.9) learns a
synthetic 3-class problem with several clusters per class (``make_classification``,
standardized). A high ``learning_rate_init`` learns fastest in the first epochs
and then stalls at a noisy plateau; a low one ends better but too slowly for the
epoch budget. So a learning rate that falls during training (what PBT's
exploit/explore can find) beats every constant one; ``alpha`` (L2) trades early
speed for late generalization the same way.

One epoch is one ``partial_fit`` pass. New params take effect at the next epoch:
``set_params``, and the SGD optimizer is rebuilt from them (sklearn keeps the
step size in ``_optimizer``, which it builds from ``learning_rate_init`` when it
is absent); the weights and the epoch count carry on.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

METRIC = "accuracy"
PARAMETERS = (
    {"name": "learning_rate_init", "type": "float", "low": 1e-3, "high": 1.0, "scale": "log"},
    {"name": "alpha", "type": "float", "low": 1e-6, "high": 1e-1, "scale": "log"},
)


@dataclass
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@functools.cache
def data() -> Split:
    """The task's fixed data: 3,600 training, 1,200 validation and 1,200 test rows."""
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(
        n_samples=6000,
        n_features=20,
        n_informative=12,
        n_redundant=2,
        n_classes=3,
        n_clusters_per_class=3,
        flip_y=0.03,
        class_sep=1.0,
        random_state=0,
    )
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order]
    scaler = StandardScaler().fit(X[:3600])
    X = scaler.transform(X)
    return Split(X[:3600], y[:3600], X[3600:4800], y[3600:4800], X[4800:], y[4800:])


@dataclass
class Model:
    """An MLP and how many epochs it trained."""

    net: Any
    epochs: int = 0


def start(params: dict[str, Any], seed: int) -> Model:
    """A fresh MLP for ``params`` (``seed``: its weights and shuffling)."""
    from sklearn.neural_network import MLPClassifier

    net = MLPClassifier(
        hidden_layer_sizes=(64,),
        solver="sgd",
        momentum=0.9,
        batch_size=64,
        learning_rate="constant",
        random_state=seed,
        **params,
    )
    return Model(net)


def set_params(model: Model, params: dict[str, Any]) -> None:
    """New params from the next epoch on (the optimizer is rebuilt from them)."""
    model.net.set_params(**params)
    if hasattr(model.net, "_optimizer"):
        del model.net._optimizer


def train_epoch(model: Model) -> float:
    """One ``partial_fit`` pass over the training rows; the validation accuracy after it."""
    d = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.net.partial_fit(d.X_train, d.y_train, classes=np.arange(3))
    model.epochs += 1
    return valid_score(model)


def valid_score(model: Model) -> float:
    d = data()
    if not np.all(np.isfinite(model.net.coefs_[0])):
        return 0.0  # diverged
    return float(model.net.score(d.X_valid, d.y_valid))


def test_score(model: Model) -> float:
    d = data()
    if not np.all(np.isfinite(model.net.coefs_[0])):
        return 0.0
    return float(model.net.score(d.X_test, d.y_test))
