"""Learning-curve tasks of the early-stopping benchmark (``bench/early_stopping.py``).

A task trains one configuration step by step: one step is one unit of the
study's fidelity (an epoch, or a block of boosting iterations), and the score
after each step is the validation accuracy (maximized). A model object holds
everything needed to train on, so a pickled model is a checkpoint: a paused
trial resumed from it continues exactly where it stopped (the same curve as
an uninterrupted run, which the smoke test checks).

Three real scikit-learn tasks on generated data (a fixed train/validation
split, no cross-validation, to stay cheap on 2 cores):

- ``sgd``: :class:`~sklearn.linear_model.SGDClassifier`, one epoch per step
  (``partial_fit``);
- ``mlp``: :class:`~sklearn.neural_network.MLPClassifier`, one epoch per step
  (``partial_fit``);
- ``hgb``: :class:`~sklearn.ensemble.HistGradientBoostingClassifier`, two
  boosting iterations per step (``warm_start``);

and ``sim``, simulated learning curves that cross: configurations that learn
slowly end highest, so judging them early is a trap.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

Params = Mapping[str, Any]

#: The fidelity every task declares: steps 1 … 27, rungs 1, 3, 9 with reduction factor 3.
MAX_STEPS = 27
FIDELITY = {"name": "steps", "min": 1, "max": MAX_STEPS}
REDUCTION_FACTOR = 3
METRIC = "accuracy"
#: Rows of every generated dataset, and how many of them are held out for validation.
ROWS = 20_000
VALIDATION_ROWS = 5_000
DATA_SEED = 0
HGB_ITERATIONS_PER_STEP = 2
HGB_BINS = 32


class Model:
    """A configuration being trained: ``steps`` done so far and the state to go on from."""

    def __init__(self, task: str, params: Params, seed: int, state: Any) -> None:
        self.task = task
        self.params = dict(params)
        self.seed = seed
        self.state = state
        self.steps = 0


@dataclass(frozen=True)
class Task:
    """One learning-curve task: its search space and how to train and score a step."""

    name: str
    kind: str  # "sklearn" | "simulated"
    description: str
    parameters: tuple[dict[str, Any], ...]
    build: Callable[[Params, int], Any]
    train_step: Callable[[Model], None]
    score: Callable[[Model], float]
    #: Simulated tasks: seconds each step sleeps, standing in for training time.
    options: dict[str, Any] = field(default_factory=dict)

    def start(self, params: Params, seed: int) -> Model:
        """A fresh, untrained model of ``params`` (model seed ``seed``)."""
        return Model(self.name, params, seed, self.build(params, seed))

    def step(self, model: Model) -> float:
        """Train ``model`` one more step; its validation score after it."""
        self.train_step(model)
        model.steps += 1
        return self.score(model)

    def optuna_distributions(self) -> dict[str, Any]:
        """The same space as Optuna distributions."""
        import optuna.distributions as d

        out: dict[str, Any] = {}
        for p in self.parameters:
            log = p.get("scale") == "log"
            if p["type"] == "float":
                out[p["name"]] = d.FloatDistribution(p["low"], p["high"], log=log)
            elif p["type"] == "int":
                out[p["name"]] = d.IntDistribution(int(p["low"]), int(p["high"]), log=log)
            else:
                out[p["name"]] = d.CategoricalDistribution(tuple(p["values"]))
        return out


# ---- data ----------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def dataset(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, y_train, X_valid, y_valid)`` of a generated dataset, standardized on the
    training rows. ``linear``: one cluster per class (a linear model fits it well);
    ``clusters``: four clusters per class and more label noise (non-linear)."""
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler

    shape = {
        "linear": {"n_clusters_per_class": 1, "class_sep": 0.6, "flip_y": 0.05},
        "clusters": {"n_clusters_per_class": 4, "class_sep": 0.9, "flip_y": 0.03},
    }[kind]
    X, y = make_classification(
        n_samples=ROWS,
        n_features=20,
        n_informative=10,
        n_redundant=4,
        random_state=DATA_SEED,
        **shape,
    )
    train = ROWS - VALIDATION_ROWS
    scaler = StandardScaler().fit(X[:train])
    X = scaler.transform(X).astype(np.float64)
    return X[:train], y[:train], X[train:], y[train:]


@lru_cache(maxsize=1)
def binned_dataset() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ``clusters`` dataset with every feature cut into ``HGB_BINS`` quantile bins of the
    training rows (the bin index as a float), so that the binning a warm-started
    HistGradientBoosting repeats on every ``fit`` is cheap."""
    Xt, yt, Xv, yv = dataset("clusters")
    edges = np.quantile(Xt, np.linspace(0, 1, HGB_BINS + 1)[1:-1], axis=0)
    cut = [np.searchsorted(edges[:, j], X[:, j]) for X in (Xt, Xv) for j in range(X.shape[1])]
    width = Xt.shape[1]
    Bt = np.stack(cut[:width], axis=1).astype(np.float64)
    Bv = np.stack(cut[width:], axis=1).astype(np.float64)
    return Bt, yt, Bv, yv


def _valid_accuracy(kind: str, estimator: Any) -> float:
    _, _, Xv, yv = binned_dataset() if kind == "binned" else dataset(kind)
    return float(estimator.score(Xv, yv))


# ---- sgd -----------------------------------------------------------------------------------
def _sgd_build(params: Params, seed: int) -> Any:
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(
        loss=params["loss"],
        penalty="elasticnet",
        alpha=params["alpha"],
        l1_ratio=params["l1_ratio"],
        learning_rate=params["learning_rate"],
        eta0=params["eta0"],
        power_t=0.25,
        random_state=seed,
    )


def _sgd_step(model: Model) -> None:
    X, y, _, _ = dataset("linear")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.state.partial_fit(X, y, classes=np.array([0, 1]))


SGD = Task(
    name="sgd",
    kind="sklearn",
    description="SGDClassifier (elastic net), one epoch per step",
    parameters=(
        {"name": "loss", "type": "categorical", "values": ["hinge", "log_loss", "modified_huber"]},
        {"name": "alpha", "type": "float", "low": 1e-7, "high": 1e-1, "scale": "log"},
        {"name": "l1_ratio", "type": "float", "low": 0.0, "high": 1.0},
        {"name": "learning_rate", "type": "categorical", "values": ["constant", "invscaling"]},
        {"name": "eta0", "type": "float", "low": 1e-5, "high": 1.0, "scale": "log"},
    ),
    build=_sgd_build,
    train_step=_sgd_step,
    score=lambda m: _valid_accuracy("linear", m.state),
)


# ---- mlp -----------------------------------------------------------------------------------
def _mlp_build(params: Params, seed: int) -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=(int(params["hidden"]),),
        activation=params["activation"],
        alpha=params["alpha"],
        learning_rate_init=params["learning_rate_init"],
        batch_size=256,
        random_state=seed,
    )


def _mlp_step(model: Model) -> None:
    X, y, _, _ = dataset("clusters")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.state.partial_fit(X, y, classes=np.array([0, 1]))


MLP = Task(
    name="mlp",
    kind="sklearn",
    description="MLPClassifier (one hidden layer, Adam, batch 256), one epoch per step",
    parameters=(
        {"name": "hidden", "type": "int", "low": 8, "high": 64, "scale": "log"},
        {"name": "activation", "type": "categorical", "values": ["relu", "tanh"]},
        {"name": "alpha", "type": "float", "low": 1e-6, "high": 1e-1, "scale": "log"},
        {"name": "learning_rate_init", "type": "float", "low": 1e-4, "high": 0.3, "scale": "log"},
    ),
    build=_mlp_build,
    train_step=_mlp_step,
    score=lambda m: _valid_accuracy("clusters", m.state),
)


# ---- hgb -----------------------------------------------------------------------------------
def _hgb_build(params: Params, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=params["learning_rate"],
        max_leaf_nodes=int(params["max_leaf_nodes"]),
        min_samples_leaf=int(params["min_samples_leaf"]),
        l2_regularization=params["l2_regularization"],
        max_features=params["max_features"],
        max_iter=HGB_ITERATIONS_PER_STEP,
        max_bins=HGB_BINS,
        early_stopping=False,
        warm_start=True,
        random_state=seed,
    )


def _hgb_step(model: Model) -> None:
    X, y, _, _ = binned_dataset()
    estimator = model.state
    estimator.max_iter = HGB_ITERATIONS_PER_STEP * (model.steps + 1)
    estimator.fit(X, y)


HGB = Task(
    name="hgb",
    kind="sklearn",
    description=f"HistGradientBoostingClassifier, {HGB_ITERATIONS_PER_STEP} boosting "
    "iterations per step (warm_start)",
    parameters=(
        {"name": "learning_rate", "type": "float", "low": 0.01, "high": 0.5, "scale": "log"},
        {"name": "max_leaf_nodes", "type": "int", "low": 4, "high": 32, "scale": "log"},
        {"name": "min_samples_leaf", "type": "int", "low": 5, "high": 200, "scale": "log"},
        {"name": "l2_regularization", "type": "float", "low": 1e-6, "high": 10.0, "scale": "log"},
        {"name": "max_features", "type": "float", "low": 0.2, "high": 1.0},
    ),
    build=_hgb_build,
    train_step=_hgb_step,
    score=lambda m: _valid_accuracy("binned", m.state),
)


# ---- simulated crossing curves ---------------------------------------------------------------
def sim_final(params: Params) -> float:
    """The score a configuration ends at after ``MAX_STEPS`` steps (before noise).

    A smooth bump around an optimum, plus a bonus for slow learners (large ``patience``):
    the configurations that end best are the ones that look worst early.
    """
    x = np.array([params["x1"], params["x2"], params["x3"]])
    bump = math.exp(-float(np.sum((x - np.array([0.3, 0.7, 0.55])) ** 2)) / 0.08)
    return 0.55 + 0.25 * bump + 0.15 * params["patience"] ** 1.5


def sim_curve(params: Params, step: int) -> float:
    """The noiseless score after ``step`` steps: rises with time constant
    ``0.3 + 14 * patience**2`` steps, so slow learners reach their (higher) plateau late."""
    tau = 0.3 + 14.0 * params["patience"] ** 2
    return sim_final(params) * (1.0 - 0.6 * math.exp(-step / tau))


def _noise(params: Params, seed: int, step: int) -> float:
    """Deterministic evaluation noise (sd 0.003) for a configuration, seed and step."""
    key = repr((sorted(params.items()), seed, step)).encode()
    u = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
    return 0.003 * float(np.random.default_rng(u).standard_normal())


def _sim_step(model: Model) -> None:
    pause = float(model.state["step_seconds"])
    if pause > 0:
        time.sleep(pause)  # the simulated training time (no CPU)


def _sim_score(model: Model) -> float:
    return sim_curve(model.params, model.steps) + _noise(model.params, model.seed, model.steps)


def sim_task(step_seconds: float = 0.0) -> Task:
    """The simulated task; each step sleeps ``step_seconds`` (a stand-in training time)."""
    return Task(
        name="sim",
        kind="simulated",
        description="simulated crossing learning curves (slow learners end best)",
        parameters=(
            {"name": "x1", "type": "float", "low": 0.0, "high": 1.0},
            {"name": "x2", "type": "float", "low": 0.0, "high": 1.0},
            {"name": "x3", "type": "float", "low": 0.0, "high": 1.0},
            {"name": "patience", "type": "float", "low": 0.0, "high": 1.0},
        ),
        build=lambda params, seed: {"step_seconds": step_seconds},
        train_step=_sim_step,
        score=_sim_score,
        options={"step_seconds": step_seconds},
    )


def all_tasks(sim_step_seconds: float = 0.0) -> dict[str, Task]:
    """Every task by name (the simulated one with ``sim_step_seconds`` per step)."""
    return {t.name: t for t in (SGD, MLP, HGB, sim_task(sim_step_seconds))}
