"""Which scikit-learn scorer fills which study metric (no I/O).

``objective.scoring`` takes three forms:

- a scorer name (``"roc_auc"``): it scores the study's objective metric;
- a list of names (``["roc_auc", "accuracy", "f1_macro"]``): the first scores the
  objective metric, each further one a metric *named like the scorer* that the
  study declares (usually ``role: tracked``);
- a mapping metric -> scorer (``{"auc": "roc_auc", "acc": "accuracy"}``), for
  metric names of your own or several objectives.

Left out, the estimator's own ``score`` (accuracy or R²) fills the objective.
Every scorer is greater-is-better (losses are negated, ``neg_log_loss``), so an
objective metric it fills must be ``maximize``. Each failure names its field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidSpec
from .trials import Goal, Metric, MetricRole

FIELD = "objective.scoring"
MAX_SCORERS = 32


def scorer_names() -> frozenset[str]:
    """Every scorer name scikit-learn knows."""
    from sklearn.metrics import get_scorer_names

    return frozenset(get_scorer_names())


def parse_scoring(raw: Any, metrics: Sequence[Metric]) -> str | list[str] | dict[str, str] | None:
    """Check ``objective.scoring`` against the study's metrics; return it as given."""
    if raw is None:
        _objective(metrics)
        return None
    mapping = scoring_map(raw, metrics)
    by_name = {m.name: m for m in metrics}
    for metric in mapping:
        if by_name[metric].role == MetricRole.OBJECTIVE and by_name[metric].goal != Goal.MAXIMIZE:
            raise InvalidSpec(
                f"scikit-learn scorers are greater-is-better; set metric {metric!r} to maximize",
                field=FIELD,
            )
    return raw if isinstance(raw, str) else (list(raw) if isinstance(raw, list) else dict(raw))


def scoring_map(raw: Any, metrics: Sequence[Metric]) -> dict[str, str | None]:
    """metric name -> scorer name (``None``: the estimator's default score)."""
    if raw is None:
        return {_objective(metrics).name: None}
    if isinstance(raw, str):
        return {_objective(metrics).name: _known(raw, FIELD)}
    if isinstance(raw, list):
        return _from_list(raw, metrics)
    if isinstance(raw, Mapping):
        return _from_mapping(raw, metrics)
    raise InvalidSpec(
        "must be a scorer name, a list of scorer names or an object metric -> scorer name",
        field=FIELD,
    )


def _objective(metrics: Sequence[Metric]) -> Metric:
    return next(m for m in metrics if m.role == MetricRole.OBJECTIVE)


def _known(name: Any, field: str) -> str:
    if not isinstance(name, str):
        raise InvalidSpec("must be a scikit-learn scorer name", field=field)
    if name not in scorer_names():
        import difflib

        close = difflib.get_close_matches(name, sorted(scorer_names()), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise InvalidSpec(f"unknown scikit-learn scorer {name!r}{hint}", field=field)
    return name


def _from_list(raw: list[Any], metrics: Sequence[Metric]) -> dict[str, str | None]:
    if not 1 <= len(raw) <= MAX_SCORERS:
        raise InvalidSpec(f"must list 1 to {MAX_SCORERS} scorer names", field=FIELD)
    names = {m.name for m in metrics}
    out: dict[str, str | None] = {_objective(metrics).name: _known(raw[0], f"{FIELD}[0]")}
    for i, scorer in enumerate(raw[1:], start=1):
        field = f"{FIELD}[{i}]"
        _known(scorer, field)
        if scorer not in names:
            raise InvalidSpec(
                f"reports a metric named {scorer!r}, which the study does not declare: add "
                f'{{"name": "{scorer}", "role": "tracked"}} to metrics',
                field=field,
            )
        if scorer in out:
            raise InvalidSpec(f"scores metric {scorer!r} twice", field=field)
        out[scorer] = scorer
    return out


def _from_mapping(raw: Mapping[Any, Any], metrics: Sequence[Metric]) -> dict[str, str | None]:
    if not 1 <= len(raw) <= MAX_SCORERS:
        raise InvalidSpec(f"must map 1 to {MAX_SCORERS} metrics to scorer names", field=FIELD)
    names = {m.name for m in metrics}
    out: dict[str, str | None] = {}
    for metric, scorer in raw.items():
        field = f"{FIELD}.{metric}"
        if metric not in names:
            raise InvalidSpec(
                f"{metric!r} is not a metric of the study (metrics: {sorted(names)})", field=field
            )
        out[str(metric)] = _known(scorer, field)
    missing = [m.name for m in metrics if m.role == MetricRole.OBJECTIVE and m.name not in out]
    if missing:
        raise InvalidSpec(
            f"gives no scorer for the objective metric(s) {missing}; every objective needs one",
            field=FIELD,
        )
    return out


def scorers_for(raw: Any, objective_metric: str) -> dict[str, str | None]:
    """metric name -> scorer name of a checked ``objective.scoring`` (what the workers
    use; ``objective_metric`` is the study's first objective metric)."""
    if raw is None or isinstance(raw, str):
        return {objective_metric: raw}
    if isinstance(raw, list):
        return {objective_metric: raw[0], **{name: name for name in raw[1:]}}
    return {str(k): str(v) for k, v in dict(raw).items()}
