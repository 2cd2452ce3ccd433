"""Managed pipelines: a scikit-learn ``Pipeline`` described in a study spec (no I/O).

``objective.pipeline`` replaces ``objective.estimator`` when a model needs
preprocessing::

    pipeline:
      columns:                      # a ColumnTransformer, the step named "columns"
        numeric: {impute: median, scale: standard}
        categorical: {impute: most_frequent, encode: onehot}
      steps:                        # transformers, then a classifier or regressor
        - {name: pca, estimator: sklearn.decomposition.PCA, params: {n_components: 5}}
        - {name: model, estimator: sklearn.ensemble.RandomForestClassifier}

Numeric (and boolean) columns go through ``numeric``, text and category columns
through ``categorical``; the column kinds come from the data, so the spec names
no columns. Tuned parameters are addressed like scikit-learn's
``set_params``: ``model__max_depth``, ``columns__categorical__encode__min_frequency``.

:func:`parse_pipeline` checks the shape only; :func:`check_pipeline` checks
what it names against the operator's policy (classes, options, values, the
study's parameter names) when a study is created, and :func:`build_pipeline`
builds the object a worker fits. Every failure names its field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import InvalidSpec
from .estimators import (
    THREAD_OPTIONS,
    check_option,
    check_plain_string,
    check_threads,
    check_values,
)

if TYPE_CHECKING:
    from .policy import ObjectivePolicy
    from .space import Parameter

FIELD = "objective.pipeline"
#: The name of the ColumnTransformer step (``columns__numeric__scale__with_mean``).
COLUMNS_STEP = "columns"
MAX_STEPS = 10
NUMERIC_IMPUTE = ("mean", "median", "most_frequent", "constant")
CATEGORICAL_IMPUTE = ("most_frequent", "constant")
SCALERS = {
    "standard": "sklearn.preprocessing.StandardScaler",
    "min_max": "sklearn.preprocessing.MinMaxScaler",
    "robust": "sklearn.preprocessing.RobustScaler",
    "max_abs": "sklearn.preprocessing.MaxAbsScaler",
}
ENCODERS = ("onehot", "ordinal")
#: What fills missing text values under ``impute: constant``.
MISSING_CATEGORY = "missing"
#: dtypes of the columns each branch of the ColumnTransformer takes (workers load
#: numeric and boolean columns as float64, text and categories as object).
NUMERIC_DTYPES = ("number",)
CATEGORICAL_DTYPES = ("object", "category", "string")
_STEP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_STEP_KEYS = ("name", "estimator", "params")
_BRANCH_KEYS = {"numeric": ("impute", "scale"), "categorical": ("impute", "encode")}
_BRANCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "numeric": {"impute": None, "scale": None},
    "categorical": {"impute": None, "encode": "onehot"},
}


# ---- shape -------------------------------------------------------------------------


def parse_pipeline(raw: Any) -> dict[str, Any]:
    """The pipeline's shape, normalized (defaults filled in); nothing is imported."""
    if not isinstance(raw, Mapping):
        raise InvalidSpec("must be an object with 'steps' (and optionally 'columns')", field=FIELD)
    for key in raw:
        if key not in ("columns", "steps"):
            raise InvalidSpec("unknown field (allowed: columns, steps)", field=f"{FIELD}.{key}")
    return {"columns": _parse_columns(raw.get("columns")), "steps": _parse_steps(raw.get("steps"))}


def _parse_columns(raw: Any) -> dict[str, Any] | None:
    field = f"{FIELD}.columns"
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidSpec("must be an object with 'numeric' and/or 'categorical'", field=field)
    out: dict[str, Any] = {"numeric": None, "categorical": None}
    for branch, value in raw.items():
        if branch not in _BRANCH_KEYS:
            raise InvalidSpec(
                "unknown field (allowed: numeric, categorical)", field=f"{field}.{branch}"
            )
        if value is not None:  # null: that kind of column is not prepared (dropped)
            out[branch] = _parse_branch(branch, value, f"{field}.{branch}")
    return out


def _parse_branch(branch: str, raw: Any, field: str) -> dict[str, Any]:
    if raw == {}:
        return dict(_BRANCH_DEFAULTS[branch])
    if not isinstance(raw, Mapping):
        raise InvalidSpec(f"must be an object with {', '.join(_BRANCH_KEYS[branch])}", field=field)
    for key in raw:
        if key not in _BRANCH_KEYS[branch]:
            allowed = ", ".join(_BRANCH_KEYS[branch])
            raise InvalidSpec(f"unknown field (allowed: {allowed})", field=f"{field}.{key}")
    choices = {
        "impute": NUMERIC_IMPUTE if branch == "numeric" else CATEGORICAL_IMPUTE,
        "scale": tuple(SCALERS),
        "encode": ENCODERS,
    }
    out = dict(_BRANCH_DEFAULTS[branch])
    for key, value in raw.items():
        nullable = key != "encode"
        if (value is None and not nullable) or (value is not None and value not in choices[key]):
            listed = [*choices[key], *(["null"] if nullable else [])]
            raise InvalidSpec(f"must be one of {listed}", field=f"{field}.{key}")
        out[key] = value
    return out


def _parse_steps(raw: Any) -> list[dict[str, Any]]:
    field = f"{FIELD}.steps"
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_STEPS:
        raise InvalidSpec(
            f"must be a list of 1 to {MAX_STEPS} steps, the last one a classifier or regressor",
            field=field,
        )
    steps, seen = [], set()
    for i, step in enumerate(raw):
        here = f"{field}[{i}]"
        if not isinstance(step, Mapping):
            raise InvalidSpec("must be an object with name, estimator and params", field=here)
        for key in step:
            if key not in _STEP_KEYS:
                raise InvalidSpec(
                    "unknown field (allowed: name, estimator, params)", field=f"{here}.{key}"
                )
        name = step.get("name")
        if not isinstance(name, str) or not _STEP_NAME.match(name) or "__" in name:
            raise InvalidSpec(
                "must be a lower-case name of letters, digits and single underscores "
                "(at most 40 characters), like 'model'",
                field=f"{here}.name",
            )
        if name == COLUMNS_STEP or name in seen:
            why = "is the ColumnTransformer's name" if name == COLUMNS_STEP else "is used twice"
            raise InvalidSpec(f"{name!r} {why}; choose another step name", field=f"{here}.name")
        seen.add(name)
        path = step.get("estimator")
        if not isinstance(path, str) or len(path) > 200 or not _DOTTED.match(path):
            raise InvalidSpec(
                "must be a dotted class path like 'sklearn.decomposition.PCA'",
                field=f"{here}.estimator",
            )
        params = step.get("params", {})
        if not isinstance(params, Mapping):
            raise InvalidSpec("must be an object", field=f"{here}.params")
        steps.append({"name": name, "estimator": path, "params": dict(params)})
    return steps


def final_estimator(pipeline: Mapping[str, Any]) -> str:
    """The class path of the pipeline's last step (the classifier or regressor)."""
    return str(pipeline["steps"][-1]["estimator"])


def encodes_categories(pipeline: Mapping[str, Any] | None) -> bool:
    """Whether the pipeline turns text and category columns into numbers."""
    columns = (pipeline or {}).get("columns") or {}
    return columns.get("categorical") is not None


def imputes_numbers(pipeline: Mapping[str, Any] | None) -> bool:
    """Whether the pipeline fills missing numbers before the estimator sees them (its
    numeric columns impute, or a step is one of scikit-learn's imputers)."""
    if pipeline is None:
        return False
    numeric = (pipeline.get("columns") or {}).get("numeric") or {}
    steps = pipeline["steps"][:-1]
    return numeric.get("impute") is not None or any(
        str(s["estimator"]).startswith("sklearn.impute.") for s in steps
    )


# ---- the objects -------------------------------------------------------------------


def build_pipeline(
    pipeline: Mapping[str, Any], params: Mapping[str, Any], policy: ObjectivePolicy
) -> Any:
    """The scikit-learn ``Pipeline`` for one trial: every class and option is checked
    against ``policy`` before anything is imported; ``params`` are ``step__param``."""
    check_run(pipeline, params, policy)
    return _skeleton(pipeline, policy).set_params(**params)


def _skeleton(pipeline: Mapping[str, Any], policy: ObjectivePolicy) -> Any:
    from sklearn.pipeline import Pipeline

    steps: list[tuple[str, Any]] = []
    if pipeline.get("columns"):
        steps.append((COLUMNS_STEP, column_transformer(pipeline["columns"])))
    for step in pipeline["steps"]:
        cls = policy.step_class(step["estimator"])
        steps.append((step["name"], cls(**step["params"])))
    return Pipeline(steps)


def column_transformer(columns: Mapping[str, Any]) -> Any:
    """The ColumnTransformer of ``objective.pipeline.columns`` (columns chosen by dtype)."""
    from sklearn.compose import ColumnTransformer, make_column_selector

    parts = []
    numeric = columns.get("numeric")
    parts.append(
        (
            "numeric",
            _numeric_branch(numeric) if numeric is not None else "passthrough",
            make_column_selector(dtype_include=list(NUMERIC_DTYPES)),
        )
    )
    categorical = columns.get("categorical")
    if categorical is not None:
        selector = make_column_selector(dtype_include=list(CATEGORICAL_DTYPES))
        parts.append(("categorical", _categorical_branch(categorical), selector))
    return ColumnTransformer(
        parts, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False
    )


def _numeric_branch(spec: Mapping[str, Any]) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    from .estimators import load_class

    steps: list[tuple[str, Any]] = []
    if spec.get("impute"):
        steps.append(("impute", SimpleImputer(strategy=spec["impute"], fill_value=0.0)))
    if spec.get("scale"):
        steps.append(("scale", load_class(SCALERS[spec["scale"]])()))
    return Pipeline(steps) if steps else "passthrough"


def _categorical_branch(spec: Mapping[str, Any]) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    steps: list[tuple[str, Any]] = []
    if spec.get("impute"):
        imputer = SimpleImputer(strategy=spec["impute"], fill_value=MISSING_CATEGORY)
        steps.append(("impute", imputer))
    if spec["encode"] == "onehot":
        encoder: Any = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
        )
    steps.append(("encode", encoder))
    return Pipeline(steps)


def _leaves(pipe: Any) -> Iterator[tuple[str, Any]]:
    """``(prefix, component)`` of every object whose options a spec may set: the steps,
    and the imputers, scalers and encoders inside the ColumnTransformer."""
    for name, step in pipe.steps:
        if name != COLUMNS_STEP:
            yield name, step
            continue
        for branch, inner, _ in step.transformers:
            if hasattr(inner, "steps"):
                for part, component in inner.steps:
                    yield f"{COLUMNS_STEP}__{branch}__{part}", component


def addressable(pipe: Any) -> dict[str, tuple[Any, str]]:
    """``step__param`` -> (the component, its option name), for plain options only."""
    names = {}
    for prefix, component in _leaves(pipe):
        for option, default in component.get_params(deep=False).items():
            if _plain_default(default):
                names[f"{prefix}__{option}"] = (component, option)
    return names


def _plain_default(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return isinstance(value, list | tuple) and all(
        v is None or isinstance(v, bool | int | float | str) for v in value
    )


# ---- checks ------------------------------------------------------------------------


def check_run(
    pipeline: Mapping[str, Any], params: Mapping[str, Any], policy: ObjectivePolicy
) -> None:
    """What a worker checks before building a trial's pipeline: classes, fixed options
    and the trial's ``step__param`` names and values (names against the steps' classes)."""
    _check_steps(pipeline, policy, values=False)
    for name, value in params.items():
        step, _, option = str(name).rpartition("__")
        field = f"params.{name}"
        if not step:
            raise InvalidSpec("must be 'step__param' in a pipeline", field=field)
        check_plain_string(str(name), field)
        check_option(option, value, field, max_n_jobs=policy.max_n_jobs)


def check_pipeline(
    pipeline: Mapping[str, Any], parameters: Sequence[Parameter], policy: ObjectivePolicy
) -> None:
    """At creation: every class allowed, fixed options known and valid, every tuned
    parameter a ``step__param`` of the pipeline with values its class accepts."""
    _check_steps(pipeline, policy, values=True)
    pipe = _skeleton(pipeline, policy)
    names = addressable(pipe)
    for i, p in enumerate(parameters):
        field = f"parameters[{i}]"
        if p.name not in names:
            raise InvalidSpec(_unknown_parameter(p.name, names), field=f"{field}.name")
        component, option = names[p.name]
        check_option(option, None, f"{field}.name", max_n_jobs=policy.max_n_jobs)
        for end, value in probe_values(p):
            if option in THREAD_OPTIONS:
                check_threads(value, f"{field}.{end}", policy.max_n_jobs)
            else:
                check_option(option, value, f"{field}.{end}", max_n_jobs=policy.max_n_jobs)
            _check_value(component, option, value, f"{field}.{end}")


def _check_steps(pipeline: Mapping[str, Any], policy: ObjectivePolicy, *, values: bool) -> None:
    steps = pipeline["steps"]
    for i, step in enumerate(steps):
        here = f"{FIELD}.steps[{i}]"
        last = i == len(steps) - 1
        known = policy.check_step(step["estimator"], final=last, field=f"{here}.estimator")
        for name, value in step["params"].items():
            field = f"{here}.params.{name}"
            check_plain_string(str(name), field)
            check_option(name, value, field, max_n_jobs=policy.max_n_jobs)
            if name not in known:
                raise InvalidSpec(
                    f"{name!r} is not a parameter of {step['estimator']}", field=field
                )
        if values:
            check_values(step["estimator"], step["params"], _under(f"{here}.params"), here)


def _under(prefix: str) -> Callable[[str], str]:
    """``name -> f"{prefix}.{name}"`` (the field of an option)."""
    return lambda name: f"{prefix}.{name}"


def _unknown_parameter(name: str, names: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    steps = sorted({n.split("__")[0] for n in names})
    return (
        f"{name!r} is not a parameter of the pipeline: name it 'step__param' with a step of "
        f"{steps} (as scikit-learn's set_params does){hint}"
    )


def probe_values(p: Parameter) -> list[tuple[str, Any]]:
    """``(field suffix, value)`` to check of a parameter: its values, or its bounds."""
    if p.values:
        return [(f"values[{j}]", v) for j, v in enumerate(p.values)]
    ends = [("low", p.low), ("high", p.high)]
    whole = p.type.value == "int"
    return [(end, int(v) if whole and v is not None else v) for end, v in ends]


def _check_value(component: Any, option: str, value: Any, field: str) -> None:
    from sklearn.base import clone

    probe = clone(component).set_params(**{option: value})
    validate = getattr(probe, "_validate_params", None)
    if validate is None:
        return
    try:
        validate()
    except (ValueError, TypeError) as exc:
        text = str(exc).strip().splitlines()
        raise InvalidSpec(text[0] if text else type(exc).__name__, field=field) from None
