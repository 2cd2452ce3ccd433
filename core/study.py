"""The study spec: a validated, frozen description of one tuning job.

:func:`parse_study_spec` takes the API's ``POST /studies`` body as a plain dict
and checks every semantic rule (the parameter space, metrics, algorithm and
early-stopping options, budgets), naming the offending field in the error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .algorithms import validate_algorithm
from .algorithms.auto import FIDELITY_RULE
from .analysis.hypervolume import parse_reference
from .errors import InvalidSpec
from .estimators import default_estimators, load_class
from .fidelity import managed_fidelity
from .objective import check_estimator_params, parse_objective
from .space import SearchSpace
from .stopping import get_rule, validate_early_stopping
from .trials import Goal, Metric, MetricRole, StudyState, Trial

MAX_NAME_LENGTH = 200
MAX_METRICS = 32
MAX_TRIALS_LIMIT = 10_000_000
MAX_LEASE_SECONDS = 7 * 24 * 3600
MAX_RETRIES_LIMIT = 100
MAX_SEED = 2**32 - 1
#: Earlier studies one study may warm-start from.
MAX_WARM_START = 16
MAX_STUDY_ID = 2**31 - 1


@dataclass(frozen=True)
class Retries:
    max_retries: int = 2
    lease_seconds: float = 600.0


@dataclass(frozen=True)
class StudySpec:
    """Everything a user declares about a study; immutable after creation except budgets."""

    name: str
    space: SearchSpace
    metrics: tuple[Metric, ...]
    algorithm: str = "auto"
    algorithm_options: Mapping[str, Any] = field(default_factory=dict)
    early_stopping: Mapping[str, Any] = field(default_factory=lambda: {"rule": "none"})
    fidelity: Mapping[str, Any] | None = None
    max_trials: int | None = None
    max_active_trials: int | None = None
    max_failed_trials: int | None = None
    retries: Retries = field(default_factory=Retries)
    seed: int = 0
    objective: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    #: Earlier studies of the same project (ids, or names until the service resolves them)
    #: whose completed trials the algorithm sees as prior history.
    warm_start: tuple[int | str, ...] = ()
    #: The hypervolume's reference point (objective name -> value) of a multi-objective study.
    hypervolume_reference: Mapping[str, float] | None = None

    @property
    def objectives(self) -> tuple[Metric, ...]:
        return tuple(m for m in self.metrics if m.role == MetricRole.OBJECTIVE)

    def to_dict(self) -> dict[str, Any]:
        """The API representation (the ``POST /studies`` body, normalized); ``warm_start``
        only when it names a study and ``hypervolume_reference`` only when given, so specs
        stored before they existed compare equal."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": self.space.to_list(),
            "metrics": [_metric_dict(m) for m in self.metrics],
            "algorithm": self.algorithm,
            "algorithm_options": dict(self.algorithm_options),
            "early_stopping": dict(self.early_stopping),
            "fidelity": dict(self.fidelity) if self.fidelity is not None else None,
            "max_trials": self.max_trials,
            "max_active_trials": self.max_active_trials,
            "max_failed_trials": self.max_failed_trials,
            "retries": {
                "max_retries": self.retries.max_retries,
                "lease_seconds": self.retries.lease_seconds,
            },
            "seed": self.seed,
            "objective": dict(self.objective) if self.objective is not None else None,
            "metadata": dict(self.metadata),
        }
        if self.warm_start:
            out["warm_start"] = list(self.warm_start)
        if self.hypervolume_reference is not None:
            out["hypervolume_reference"] = dict(self.hypervolume_reference)
        return out


def _metric_dict(m: Metric) -> dict[str, Any]:
    out: dict[str, Any] = {"name": m.name, "goal": m.goal.value, "role": m.role.value}
    if m.threshold is not None:
        out["threshold"] = m.threshold
    return out


def with_auto_rule(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The spec with the rule ``auto`` picks for a study that declares a ``fidelity`` and no
    ``early_stopping``: :data:`~tuneforge.core.algorithms.auto.FIDELITY_RULE` (``bohb``)
    with its defaults, when the spec is valid with it (one objective, no outcome
    constraints, ``fidelity.min > 0``, workers that can resume: every check a spec naming
    the rule passes); otherwise the spec as given (its own rule, or the default ``none``)."""
    if data.get("algorithm", "auto") != "auto" or data.get("early_stopping") is not None:
        return data
    if data.get("fidelity") is None:
        return data
    candidate = {**data, "early_stopping": {"rule": FIDELITY_RULE}}
    try:
        parse_study_spec(candidate)
    except InvalidSpec:
        return data
    return candidate


def parse_study_spec(data: Mapping[str, Any]) -> StudySpec:
    """Validate a study spec dict; raises :class:`InvalidSpec` naming the field and the rule."""
    data = with_auto_rule(data)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidSpec(
            f"must be a non-empty string of at most {MAX_NAME_LENGTH} characters", field="name"
        )
    space = SearchSpace.from_list(data.get("parameters"))  # type: ignore[arg-type]
    fidelity = parse_fidelity(data.get("fidelity"))
    metrics = parse_metrics(data.get("metrics"))
    objective = parse_objective(data.get("objective"), metrics)
    check_estimator_params(objective, space.names)
    algorithm = data.get("algorithm", "auto")
    options = validate_algorithm(algorithm, data.get("algorithm_options") or {}, space)
    early_stopping = validate_early_stopping(data.get("early_stopping"), fidelity)
    _check_managed_fidelity(objective, fidelity, early_stopping, space)
    _check_rule_metric(early_stopping, metrics)
    return StudySpec(
        name=name,
        description=_optional_str(data.get("description"), "description"),
        space=space,
        metrics=metrics,
        algorithm=algorithm,
        algorithm_options=options,
        early_stopping=early_stopping,
        fidelity=fidelity,
        max_trials=budget(data.get("max_trials"), "max_trials", minimum=1),
        max_active_trials=budget(data.get("max_active_trials"), "max_active_trials", minimum=1),
        max_failed_trials=budget(data.get("max_failed_trials"), "max_failed_trials", minimum=1),
        retries=_parse_retries(data.get("retries")),
        seed=_parse_seed(data.get("seed", 0)),
        objective=objective,
        metadata=_parse_metadata(data.get("metadata")),
        warm_start=parse_warm_start(data.get("warm_start")),
        hypervolume_reference=parse_reference(data.get("hypervolume_reference"), metrics),
    )


def _check_managed_fidelity(
    objective: Mapping[str, Any] | None,
    fidelity: Mapping[str, Any] | None,
    early_stopping: Mapping[str, Any],
    space: SearchSpace,
) -> None:
    """A managed objective trains by rungs of the fidelity; a rule that pauses and resumes
    trials needs a resource the workers can resume (:func:`.fidelity.managed_fidelity`).

    The estimator class is imported only when it is on the default allow-list (as
    :func:`check_estimator_params` does); the workers check the others."""
    path = objective.get("estimator") if objective is not None else None
    estimator = None
    if fidelity is not None and isinstance(path, str) and path in default_estimators():
        estimator = load_class(path)
    managed_fidelity(objective, fidelity, early_stopping, space.names, estimator)


def _check_rule_metric(early_stopping: Mapping[str, Any], metrics: tuple[Metric, ...]) -> None:
    """The rule's ``metric`` option, when given, names one of the study's objectives; a rule
    that feeds the algorithm one objective (BOHB) needs a study with just that."""
    name = early_stopping.get("metric")
    objectives = [m.name for m in metrics if m.role == MetricRole.OBJECTIVE]
    rule = early_stopping["rule"]
    single = len(objectives) == 1 and not any(m.role == MetricRole.CONSTRAINT for m in metrics)
    if get_rule(rule).feeds_algorithm and not single:
        raise InvalidSpec(
            f"rule {rule!r} fits the algorithm on one objective per budget: the study needs "
            "exactly one objective and no outcome constraints",
            field="early_stopping.rule",
        )
    if name is not None and name not in objectives:
        raise InvalidSpec(
            f"must name an objective of the study (objectives: {objectives}), got {name!r}",
            field="early_stopping.metric",
        )


def parse_metrics(raw: Any) -> tuple[Metric, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidSpec("must be a non-empty list of metrics", field="metrics")
    if len(raw) > MAX_METRICS:
        raise InvalidSpec(f"at most {MAX_METRICS} metrics are allowed", field="metrics")
    metrics: list[Metric] = []
    for i, item in enumerate(raw):
        metric = _parse_metric(item, f"metrics[{i}]")
        if any(m.name == metric.name for m in metrics):
            raise InvalidSpec(f"duplicate metric name {metric.name!r}", field=f"metrics[{i}].name")
        metrics.append(metric)
    if not any(m.role == MetricRole.OBJECTIVE for m in metrics):
        raise InvalidSpec(
            "at least one metric must be an objective (role 'objective')", field="metrics"
        )
    return tuple(metrics)


def _parse_metric(item: Any, where: str) -> Metric:
    if not isinstance(item, Mapping):
        raise InvalidSpec("must be an object", field=where)
    for key in item:
        if key not in ("name", "goal", "role", "threshold"):
            raise InvalidSpec(
                "unknown field (allowed: name, goal, role, threshold)", field=f"{where}.{key}"
            )
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise InvalidSpec(
            "must be a non-empty string of at most 128 characters", field=f"{where}.name"
        )
    try:
        goal = Goal(item.get("goal", "maximize"))
    except ValueError:
        raise InvalidSpec("must be 'maximize' or 'minimize'", field=f"{where}.goal") from None
    try:
        role = MetricRole(item.get("role", "objective"))
    except ValueError:
        raise InvalidSpec(
            "must be 'objective', 'constraint' or 'tracked'", field=f"{where}.role"
        ) from None
    threshold = item.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise InvalidSpec("must be a number", field=f"{where}.threshold")
    if role == MetricRole.CONSTRAINT and threshold is None:
        raise InvalidSpec("a constraint needs a threshold", field=f"{where}.threshold")
    if role != MetricRole.CONSTRAINT and threshold is not None:
        raise InvalidSpec("only constraints take a threshold", field=f"{where}.threshold")
    return Metric(
        name=name,
        goal=goal,
        role=role,
        threshold=float(threshold) if threshold is not None else None,
    )


def parse_fidelity(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidSpec("must be null or an object with name, min and max", field="fidelity")
    for key in raw:
        if key not in ("name", "min", "max"):
            raise InvalidSpec("unknown field (allowed: name, min, max)", field=f"fidelity.{key}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidSpec("must be a non-empty string", field="fidelity.name")
    lo, hi = raw.get("min"), raw.get("max")
    for key, value in (("min", lo), ("max", hi)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidSpec("must be a number >= 0", field=f"fidelity.{key}")
    assert isinstance(lo, int | float) and isinstance(hi, int | float)
    if not lo < hi:
        raise InvalidSpec(f"must be greater than min ({lo})", field="fidelity.max")
    return {"name": name, "min": lo, "max": hi}


def budget(raw: Any, field_name: str, *, minimum: int) -> int | None:
    """A positive integer budget (``None`` = unlimited)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidSpec(f"must be an integer or null, got {raw!r}", field=field_name)
    if not minimum <= raw <= MAX_TRIALS_LIMIT:
        raise InvalidSpec(
            f"must be between {minimum} and {MAX_TRIALS_LIMIT}, got {raw}", field=field_name
        )
    return raw


def _parse_retries(raw: Any) -> Retries:
    if raw is None:
        return Retries()
    if not isinstance(raw, Mapping):
        raise InvalidSpec("must be an object", field="retries")
    for key in raw:
        if key not in ("max_retries", "lease_seconds"):
            raise InvalidSpec(
                "unknown field (allowed: max_retries, lease_seconds)", field=f"retries.{key}"
            )
    max_retries = raw.get("max_retries", Retries.max_retries)
    if (
        isinstance(max_retries, bool)
        or not isinstance(max_retries, int)
        or not 0 <= max_retries <= MAX_RETRIES_LIMIT
    ):
        raise InvalidSpec(
            f"must be an integer in [0, {MAX_RETRIES_LIMIT}]", field="retries.max_retries"
        )
    lease = raw.get("lease_seconds", Retries.lease_seconds)
    if (
        isinstance(lease, bool)
        or not isinstance(lease, int | float)
        or not 0.1 <= lease <= MAX_LEASE_SECONDS
    ):
        raise InvalidSpec(
            f"must be a number of seconds in [0.1, {MAX_LEASE_SECONDS}]",
            field="retries.lease_seconds",
        )
    return Retries(max_retries=max_retries, lease_seconds=float(lease))


def _parse_seed(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_SEED:
        raise InvalidSpec(f"must be an integer in [0, {MAX_SEED}]", field="seed")
    return raw


def parse_warm_start(raw: Any) -> tuple[int | str, ...]:
    """``warm_start``: a list of study ids (integers) or names; the service checks that each
    names a study of the same project."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_WARM_START:
        raise InvalidSpec(
            f"must be a list of at most {MAX_WARM_START} study ids or names", field="warm_start"
        )
    out: list[int | str] = []
    for i, ref in enumerate(raw):
        where = f"warm_start[{i}]"
        if isinstance(ref, int) and not isinstance(ref, bool):
            if not 0 <= ref <= MAX_STUDY_ID:
                raise InvalidSpec(f"must be a study id in [0, {MAX_STUDY_ID}]", field=where)
        elif not isinstance(ref, str) or not ref.strip() or len(ref) > MAX_NAME_LENGTH:
            raise InvalidSpec(
                f"must be a study id (integer) or name (a non-empty string of at most "
                f"{MAX_NAME_LENGTH} characters), got {ref!r}",
                field=where,
            )
        out.append(ref)
    return tuple(out)


def _parse_metadata(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidSpec("must be an object", field="metadata")
    return dict(raw)


def _optional_str(raw: Any, field_name: str, max_length: int = 10_000) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > max_length:
        raise InvalidSpec(f"must be a string of at most {max_length} characters", field=field_name)
    return raw


@dataclass(frozen=True)
class Study:
    """A stored study as the service reports it: its spec plus server-side state."""

    id: int
    spec: StudySpec
    state: StudyState
    created_at: datetime
    updated_at: datetime
    trial_counts: Mapping[str, int] = field(default_factory=dict)
    best_trials: tuple[Trial, ...] = ()
    completion_reason: str | None = None
    project: str = "default"
    #: True once the workers were asked to run the managed objective.
    managed: bool = False
    #: The held-out evaluation of the best configuration, when there is one.
    evaluation: Mapping[str, Any] | None = None
