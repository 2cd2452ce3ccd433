"""A managed scikit-learn objective's fidelity: the resource the workers train it by.

A study's ``fidelity`` names the resource a measurement's ``step`` counts. When
the study has a managed ``sklearn`` objective, the bundled workers train each
trial by rungs of that resource, so its name must be one they know how to grow:

================== ============================================ =========================
``fidelity.name``  a step counts                                how training goes on
================== ============================================ =========================
``n_estimators``   trees or boosting stages                     ``warm_start`` refit
``max_iter``       epochs, one ``partial_fit`` pass each         ``partial_fit``
                   (SGD, MLP, Perceptron, ...); for
                   HistGradientBoosting: boosting iterations     ``warm_start`` refit
``n_samples``      rows of each training fold learnt from       ``partial_fit`` on the new
``sample_percent`` percent of each training fold's rows         rows; refit otherwise
``folds``          cross-validation folds done                  the next folds
================== ============================================ =========================

Every check here raises :class:`~.errors.InvalidSpec` naming the field:
the fidelity's bounds (whole numbers), a name the estimator cannot grow, a
resource that is also tuned or fixed, and a rule that pauses and resumes
trials (``asha``, ``hyperband``, ``bohb``) with a resource that cannot resume
(a refit would start from scratch). :func:`managed_fidelity` is the one place
these rules live; the server calls it when a study is created, the workers
again (with the estimator class their own policy allows) before they train.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from .errors import InvalidSpec
from .options import OptionsModel, parse_options
from .stopping import get_rule
from .stopping.asha import rungs_of

#: How a resource grows. ``warm_start``: an estimator parameter raised and refit with
#: ``warm_start``; ``epochs``: ``partial_fit`` passes; ``stream``: ``partial_fit`` on the next
#: rows; ``subsample``: a fresh fit on more rows (cannot resume); ``folds``: more folds.
Kind = Literal["warm_start", "epochs", "stream", "subsample", "folds"]
#: Resources of the data rather than of the estimator.
ROW_RESOURCES = ("n_samples", "sample_percent")
DATA_RESOURCES = (*ROW_RESOURCES, "folds")
#: Estimators whose ``max_iter`` adds boosting iterations under ``warm_start`` (for the
#: others ``warm_start`` starts a new solver run from the last solution).
WARM_START_MAX_ITER = frozenset(
    {
        "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn.ensemble.HistGradientBoostingRegressor",
    }
)
#: Resource ranges of at most this many units are reported unit by unit (folds, epochs)
#: under a rule that does not pause; longer ones, and other resources, at ``min * 3**k``.
MAX_UNIT_STEPS = 100
GEOMETRIC_FACTOR = 3
MAX_RESOURCE = 2**31 - 1
_NAME = "fidelity.name"


class FidelityBounds(OptionsModel):
    """A managed objective's fidelity: whole numbers of a resource, ``min`` < ``max``."""

    name: str
    min: int = Field(ge=1, le=MAX_RESOURCE, description="The first rung's resource.")
    max: int = Field(ge=2, le=MAX_RESOURCE, description="A fully trained trial's resource.")


@dataclass(frozen=True)
class ManagedFidelity:
    """How the workers train a managed objective's trials: which resource, grown how,
    reported at which steps, and whether they keep a checkpoint at each."""

    name: str
    kind: Kind
    low: int
    high: int
    #: Steps (resource values) at which the worker reports the CV score, ascending.
    steps: tuple[int, ...]
    #: Whether the worker saves a checkpoint at each step (the rule may pause the trial).
    checkpoints: bool

    @property
    def resumable(self) -> bool:
        """Whether a paused trial goes on from its checkpoint (every kind but ``subsample``)."""
        return self.kind != "subsample"

    @property
    def estimator_param(self) -> bool:
        """Whether the resource is a constructor option of the estimator."""
        return self.name not in DATA_RESOURCES


def managed_fidelity(
    objective: Mapping[str, Any] | None,
    fidelity: Mapping[str, Any] | None,
    early_stopping: Mapping[str, Any],
    parameter_names: Sequence[str],
    estimator: type | None,
) -> ManagedFidelity | None:
    """Check a study's fidelity against its managed objective; the training plan, if any.

    ``estimator`` is the objective's estimator class, or ``None`` when it may not be
    imported here (then only what needs no class is checked, and ``None`` returned;
    the workers check the rest). ``None`` too for studies without a managed objective,
    without a fidelity, or with a python objective (whose function reports its own
    steps; it cannot resume a paused trial, so a rule that pauses is refused).
    """
    rule = get_rule(str(early_stopping.get("rule", "none")))
    if objective is None:
        return None
    if objective.get("kind") != "sklearn":
        if rule.exploits:
            raise InvalidSpec(
                f"rule {rule.name!r} makes trials train on from other trials' checkpoints, and "
                "a managed python objective gets no checkpoint; use a sklearn objective with a "
                "fidelity, or your own workers (objective null)",
                field="early_stopping.rule",
            )
        if rule.promotes:
            raise InvalidSpec(
                f"rule {rule.name!r} pauses trials and resumes them later, and a managed python "
                "objective cannot resume one (its function gets no checkpoint); use a sklearn "
                "objective with a fidelity, or your own workers (objective null)",
                field="early_stopping.rule",
            )
        return None
    if fidelity is None:
        if rule.exploits:
            raise InvalidSpec(
                f"rule {rule.name!r} needs a fidelity for a managed objective: the workers "
                "train its trials step by step (e.g. max_iter epochs, n_estimators trees)",
                field="fidelity",
            )
        return None
    if objective.get("pipeline"):
        raise InvalidSpec(
            "a managed pipeline is not trained by rungs yet: give the study no fidelity, or "
            "tune a plain estimator (objective.estimator) by rungs",
            field="fidelity",
        )
    bounds = _bounds(fidelity)
    _check_not_set_elsewhere(bounds.name, objective, parameter_names)
    if _grows_by_warm_start(bounds.name, str(objective["estimator"])):
        _check_warm_start(objective, parameter_names)
    if bounds.name == "folds":
        _check_folds(bounds, objective["cv"])
    if bounds.name == "sample_percent" and bounds.max > 100:
        raise InvalidSpec("must be at most 100 (percent of a training fold)", field="fidelity.max")
    if rule.name == "wilcoxon" and bounds.name != "folds":
        raise InvalidSpec(
            "rule 'wilcoxon' compares fold scores, so its steps must be folds: give no "
            "fidelity or fidelity.name 'folds'",
            field="early_stopping.rule",
        )
    if estimator is None:
        return None
    kind = resource_kind(bounds.name, str(objective["estimator"]), estimator)
    if rule.exploits and kind in ("subsample", "folds"):
        raise InvalidSpec(
            f"rule {rule.name!r} trains each model on from another trial's, so the fidelity "
            "must grow the model: max_iter with partial_fit, or n_estimators / max_iter with "
            f"warm_start (not {bounds.name!r})",
            field=_NAME,
        )
    if rule.promotes and kind == "subsample":
        raise InvalidSpec(
            f"rule {rule.name!r} pauses trials and resumes them later, and "
            f"{_short(objective['estimator'])} cannot resume training on more rows (it has no "
            "partial_fit, so a resumed trial would refit from scratch); use n_estimators, "
            "max_iter or folds as the fidelity, an estimator with partial_fit, or a rule "
            "that does not pause (median, percentile, patience, threshold)",
            field="early_stopping.rule",
        )
    return ManagedFidelity(
        name=bounds.name,
        kind=kind,
        low=bounds.min,
        high=bounds.max,
        steps=report_steps(kind, bounds.min, bounds.max, early_stopping),
        checkpoints=rule.promotes or rule.exploits,
    )


def resource_kind(name: str, path: str, estimator: type) -> Kind:
    """How the workers grow resource ``name`` of estimator class ``estimator`` (at ``path``);
    :class:`InvalidSpec` on ``fidelity.name`` when they cannot."""
    options = set(estimator().get_params(deep=False))
    incremental = hasattr(estimator, "partial_fit")
    if name == "folds":
        return "folds"
    if name in ROW_RESOURCES:
        return "stream" if incremental else "subsample"
    if name not in options:
        raise InvalidSpec(
            f"{name!r} is not a resource {_short(path)} can be trained by; it can be: "
            f"{', '.join(trainable_resources(path, estimator))}",
            field=_NAME,
        )
    if name == "n_estimators" and "warm_start" in options:
        return "warm_start"
    if name == "max_iter" and incremental:
        return "epochs"
    if name == "max_iter" and path in WARM_START_MAX_ITER:
        return "warm_start"
    raise InvalidSpec(
        f"{_short(path)} cannot go on training by {name!r} from where it stopped (the workers "
        "grow n_estimators with warm_start and max_iter with partial_fit); it can be trained "
        f"by: {', '.join(trainable_resources(path, estimator))}",
        field=_NAME,
    )


def trainable_resources(path: str, estimator: type) -> list[str]:
    """Every ``fidelity.name`` the workers can train estimator class ``estimator`` by."""
    options = set(estimator().get_params(deep=False))
    out = []
    if "n_estimators" in options and "warm_start" in options:
        out.append("n_estimators")
    if "max_iter" in options and (hasattr(estimator, "partial_fit") or path in WARM_START_MAX_ITER):
        out.append("max_iter")
    return [*out, *DATA_RESOURCES]


def report_steps(
    kind: Kind, low: int, high: int, early_stopping: Mapping[str, Any]
) -> tuple[int, ...]:
    """Where the worker reports: a pausing rule's rungs and ``high``; ``low``, each multiple of
    pbt's ``interval`` and ``high`` under pbt; otherwise every unit of short fold and epoch
    ranges, and ``low * 3**k`` (and ``high``) for the rest."""
    rule = get_rule(str(early_stopping.get("rule", "none")))
    if rule.exploits:  # pbt decides every `interval` steps
        every = int(early_stopping.get("interval", 4))
        points = {low, *range(every * math.ceil(low / every), high, every)}
    elif rule.promotes:
        eta = int(early_stopping.get("reduction_factor", GEOMETRIC_FACTOR))
        points = {math.ceil(r) for r in rungs_of({"min": low, "max": high}, eta)}
    elif kind in ("folds", "epochs") and high - low < MAX_UNIT_STEPS:
        points = set(range(low, high + 1))
    else:
        points = {math.ceil(r) for r in rungs_of({"min": low, "max": high}, GEOMETRIC_FACTOR)}
    return tuple(sorted(points | {high}))


def _bounds(fidelity: Mapping[str, Any]) -> FidelityBounds:
    bounds = parse_options(
        FidelityBounds, fidelity, prefix="fidelity", owner="a managed objective's fidelity"
    )
    assert isinstance(bounds, FidelityBounds)
    return bounds


def _check_not_set_elsewhere(
    name: str, objective: Mapping[str, Any], parameter_names: Sequence[str]
) -> None:
    """The workers set the resource at each rung: it can be neither tuned nor fixed."""
    if name in parameter_names:
        i = list(parameter_names).index(name)
        raise InvalidSpec(
            f"{name!r} is also a tuned parameter (parameters[{i}]); the fidelity sets it at "
            "each rung, so remove it from the parameters",
            field=_NAME,
        )
    fixed = objective.get("fixed_params", {})
    if name in fixed:
        raise InvalidSpec(
            f"is set by the fidelity {name!r} at each rung; remove it from fixed_params",
            field=f"objective.fixed_params.{name}",
        )


def _grows_by_warm_start(name: str, path: str) -> bool:
    return name == "n_estimators" or (name == "max_iter" and path in WARM_START_MAX_ITER)


def _check_warm_start(objective: Mapping[str, Any], parameter_names: Sequence[str]) -> None:
    """A resource grown by ``warm_start`` refits needs ``warm_start`` on: the workers set it."""
    fixed = objective.get("fixed_params", {})
    if "warm_start" in fixed and fixed["warm_start"] is not True:
        raise InvalidSpec(
            "the workers train by rungs with warm_start; leave it out or set it to true",
            field="objective.fixed_params.warm_start",
        )
    if "warm_start" in parameter_names:
        i = list(parameter_names).index("warm_start")
        raise InvalidSpec(
            "cannot be tuned: the workers train by rungs with warm_start on",
            field=f"parameters[{i}].name",
        )


def _check_folds(bounds: FidelityBounds, cv: Mapping[str, Any]) -> None:
    if cv["type"] == "leave_one_out":
        raise InvalidSpec(
            "leave_one_out has as many folds as rows; a folds fidelity needs a cv with n_splits",
            field=_NAME,
        )
    total = int(cv["n_splits"]) * int(cv.get("n_repeats", 1))
    if bounds.max > total:
        raise InvalidSpec(
            f"must be at most the number of folds of objective.cv ({total})", field="fidelity.max"
        )


def _short(path: Any) -> str:
    return str(path).rpartition(".")[2]
