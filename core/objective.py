"""Managed objectives: what Celery workers run for a study, validated at creation.

``kind: "sklearn"`` trains an allow-listed estimator with cross-validation on a
dataset; ``kind: "python"`` calls ``package.module:function(params, reporter)``
installed on the workers. Every rule failure names its field
(``objective.cv.n_splits``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidSpec
from .estimators import default_estimators, estimator_options
from .pipelines import final_estimator, parse_pipeline
from .scoring import parse_scoring
from .trials import Metric

CV_TYPES = (
    "kfold",
    "stratified_kfold",
    "repeated_kfold",
    "repeated_stratified_kfold",
    "group_kfold",
    "time_series",
    "leave_one_out",
    "shuffle_split",
)
SKLEARN_DATASETS = ("iris", "digits", "wine", "breast_cancer", "diabetes")
DATASET_SOURCES = ("sklearn", "csv", "parquet", "uploaded")
#: Fields of an uploaded dataset's reference; ``id`` or ``name`` picks the dataset, the
#: server fills in the rest (its fingerprint and format, its default target and groups).
UPLOADED_KEYS = ("source", "id", "name", "sha256", "format", "target", "groups", "features")
PREPROCESSING = ("standard_scaler", "min_max_scaler", "robust_scaler")
_DOTTED = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")
_CALLABLE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
MAX_SPLITS = 1000
#: Deepest nesting of objects and lists inside ``objective`` (``options`` included).
MAX_DEPTH = 8
#: ``test_size`` bounds: a fraction that leaves rows on both sides of the split.
MIN_TEST_SIZE, MAX_TEST_SIZE = 0.001, 0.999

_SKLEARN_KEYS = {
    "kind", "estimator", "fixed_params", "dataset", "cv", "scoring", "test_size",
    "preprocessing", "seed", "outer_fold", "pipeline",
}  # fmt: skip
_CV_KEYS = {
    "type",
    "n_splits",
    "n_repeats",
    "shuffle",
    "seed",
    "test_size",
    "gap",
    "max_train_size",
}


def parse_objective(raw: Any, metrics: Sequence[Metric]) -> dict[str, Any] | None:
    """Validate a study's ``objective`` and return it normalized (defaults filled in).

    This checks the objective's shape only and imports nothing it names. What it
    names (module, estimator and options, data path) is checked against the
    operator's policy when a study is created
    (:meth:`tuneforge.core.policy.ObjectivePolicy.check_spec`) and again on the workers.
    """
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidSpec("must be null or an object", field="objective")
    _check_plain(raw, "objective", 0)
    kind = raw.get("kind")
    if kind == "python":
        return _parse_python(raw)
    if kind == "sklearn":
        return _parse_sklearn(raw, metrics)
    raise InvalidSpec("must be 'sklearn' or 'python'", field="objective.kind")


def _parse_python(raw: Mapping[str, Any]) -> dict[str, Any]:
    for key in raw:
        if key not in ("kind", "callable", "options"):
            raise InvalidSpec(
                "unknown field (allowed: kind, callable, options)", field=f"objective.{key}"
            )
    target = raw.get("callable")
    if not isinstance(target, str) or not _CALLABLE.match(target):
        raise InvalidSpec("must look like 'package.module:function'", field="objective.callable")
    options = raw.get("options", {})
    if not isinstance(options, Mapping):
        raise InvalidSpec("must be an object", field="objective.options")
    return {"kind": "python", "callable": target, "options": dict(options)}


def _check_plain(value: Any, field: str, depth: int) -> None:
    """No NUL, control character or lone surrogate in any string (keys included), and a
    bounded depth: such strings cannot be stored on every backend or name anything."""
    if depth > MAX_DEPTH:
        raise InvalidSpec(f"is nested more than {MAX_DEPTH} levels deep", field=field)
    if isinstance(value, str) and not _plain_text(value):
        raise InvalidSpec(
            "must not contain NUL, control characters or lone surrogates", field=field
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not _plain_text(str(key)):
                raise InvalidSpec(
                    "has a key with NUL, control characters or lone surrogates", field=field
                )
            _check_plain(item, f"{field}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{field}[{i}]", depth + 1)


def _plain_text(text: str) -> bool:
    return not any((ord(c) < 32 and c not in "\t\n\r") or 0xD800 <= ord(c) <= 0xDFFF for c in text)


def _parse_sklearn(raw: Mapping[str, Any], metrics: Sequence[Metric]) -> dict[str, Any]:
    for key in raw:
        if key not in _SKLEARN_KEYS:
            raise InvalidSpec(
                f"unknown field (allowed: {', '.join(sorted(_SKLEARN_KEYS))})",
                field=f"objective.{key}",
            )
    model = _parse_model(raw)
    dataset = _parse_dataset(raw.get("dataset"))
    cv = _parse_cv(raw.get("cv", {"type": "kfold"}), dataset)
    scoring = parse_scoring(raw.get("scoring"), metrics)
    outer = _parse_outer_fold(raw.get("outer_fold"))
    if outer is not None and raw.get("test_size") is not None:
        raise InvalidSpec(
            "test_size and outer_fold exclude each other", field="objective.outer_fold"
        )
    return {
        "kind": "sklearn",
        "outer_fold": outer,
        **model,
        "dataset": dataset,
        "cv": cv,
        "scoring": scoring,
        "test_size": _parse_test_size(raw.get("test_size")),
        "seed": _int(raw.get("seed", 0), "objective.seed", 0, 2**32 - 1),
    }


def _parse_model(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``estimator`` (with ``fixed_params`` and ``preprocessing``) or ``pipeline``."""
    if raw.get("pipeline") is None:
        fixed = raw.get("fixed_params", {})
        if not isinstance(fixed, Mapping):
            raise InvalidSpec("must be an object", field="objective.fixed_params")
        return {
            "estimator": _parse_estimator(raw.get("estimator")),
            "fixed_params": dict(fixed),
            "preprocessing": _parse_preprocessing(raw.get("preprocessing", [])),
        }
    for key, instead in (
        ("estimator", "the pipeline's last step"),
        ("fixed_params", "each step's params"),
        ("preprocessing", "pipeline.columns or a transformer step"),
    ):
        if raw.get(key) not in (None, {}, []):
            raise InvalidSpec(
                f"goes with estimator, not with pipeline: use {instead}", field=f"objective.{key}"
            )
    return {"pipeline": parse_pipeline(raw["pipeline"])}


def model_path(objective: Mapping[str, Any]) -> str:
    """The class path of the model a managed sklearn objective fits (a pipeline's last step)."""
    if objective.get("pipeline"):
        return final_estimator(objective["pipeline"])
    return str(objective["estimator"])


def _parse_estimator(value: Any) -> str:
    """A dotted class path (its shape only: nothing is imported here)."""
    field = "objective.estimator"
    if not isinstance(value, str) or len(value) > 200 or not _DOTTED.match(value):
        raise InvalidSpec("must be a dotted class path like 'sklearn.svm.SVC'", field=field)
    return value


def _parse_dataset(raw: Any) -> dict[str, Any]:
    field = "objective.dataset"
    if not isinstance(raw, Mapping):
        raise InvalidSpec("must be an object with 'source'", field=field)
    source = raw.get("source")
    if source not in DATASET_SOURCES:
        raise InvalidSpec(f"must be one of {list(DATASET_SOURCES)}", field=f"{field}.source")
    if source == "sklearn":
        for key in raw:
            if key not in ("source", "name"):
                raise InvalidSpec("unknown field (allowed: source, name)", field=f"{field}.{key}")
        if raw.get("name") not in SKLEARN_DATASETS:
            raise InvalidSpec(f"must be one of {list(SKLEARN_DATASETS)}", field=f"{field}.name")
        return {"source": "sklearn", "name": raw["name"]}
    if source == "uploaded":
        return _parse_uploaded(raw)
    for key in raw:
        if key not in ("source", "path", "target", "groups", "features"):
            raise InvalidSpec(
                "unknown field (allowed: source, path, target, groups, features)",
                field=f"{field}.{key}",
            )
    for key in ("path", "target"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise InvalidSpec("is required (a string)", field=f"{field}.{key}")
    groups = raw.get("groups")
    if groups is not None and not isinstance(groups, str):
        raise InvalidSpec("must be a column name", field=f"{field}.groups")
    features = raw.get("features")
    if features is not None and (
        not isinstance(features, list) or not all(isinstance(f, str) for f in features)
    ):
        raise InvalidSpec("must be a list of column names", field=f"{field}.features")
    return {k: raw[k] for k in ("source", "path", "target", "groups", "features") if k in raw}


def _parse_uploaded(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A reference to a dataset uploaded with ``POST /datasets``, by ``id`` or ``name``."""
    field = "objective.dataset"
    for key in raw:
        if key not in UPLOADED_KEYS:
            raise InvalidSpec(
                f"unknown field (allowed: {', '.join(UPLOADED_KEYS)})", field=f"{field}.{key}"
            )
    ident, name = raw.get("id"), raw.get("name")
    if ident is None and name is None:
        raise InvalidSpec("give the uploaded dataset's id or name", field=f"{field}.id")
    if ident is not None:
        _int(ident, f"{field}.id", 0, 2**31 - 1)
    for key in ("name", "sha256", "format", "target", "groups"):
        if raw.get(key) is not None and (not isinstance(raw[key], str) or not raw[key]):
            raise InvalidSpec("must be a non-empty string", field=f"{field}.{key}")
    features = raw.get("features")
    if features is not None and (
        not isinstance(features, list) or not all(isinstance(f, str) for f in features)
    ):
        raise InvalidSpec("must be a list of column names", field=f"{field}.features")
    return {k: raw[k] for k in UPLOADED_KEYS if raw.get(k) is not None}


def _parse_cv(raw: Any, dataset: Mapping[str, Any]) -> dict[str, Any]:
    field = "objective.cv"
    if not isinstance(raw, Mapping):
        raise InvalidSpec("must be an object with 'type'", field=field)
    for key in raw:
        if key not in _CV_KEYS:
            raise InvalidSpec(
                f"unknown field (allowed: {', '.join(sorted(_CV_KEYS))})", field=f"{field}.{key}"
            )
    cv_type = raw.get("type", "kfold")
    if cv_type not in CV_TYPES:
        raise InvalidSpec(f"must be one of {list(CV_TYPES)}", field=f"{field}.type")
    out: dict[str, Any] = {"type": cv_type}
    if cv_type != "leave_one_out":
        out["n_splits"] = _int(raw.get("n_splits", 5), f"{field}.n_splits", 2, MAX_SPLITS)
    if cv_type.startswith("repeated"):
        out["n_repeats"] = _int(raw.get("n_repeats", 2), f"{field}.n_repeats", 1, 100)
    if cv_type in ("kfold", "stratified_kfold"):
        shuffle = raw.get("shuffle", True)
        if not isinstance(shuffle, bool):
            raise InvalidSpec("must be true or false", field=f"{field}.shuffle")
        out["shuffle"] = shuffle
    if cv_type in (
        "kfold",
        "stratified_kfold",
        "repeated_kfold",
        "repeated_stratified_kfold",
        "shuffle_split",
    ):
        out["seed"] = _int(raw.get("seed", 0), f"{field}.seed", 0, 2**32 - 1)
    if cv_type == "shuffle_split":
        out["test_size"] = _parse_test_size(raw.get("test_size", 0.2), f"{field}.test_size")
    if cv_type == "time_series":
        out["gap"] = _int(raw.get("gap", 0), f"{field}.gap", 0, 10**9)
        if raw.get("max_train_size") is not None:
            out["max_train_size"] = _int(
                raw["max_train_size"], f"{field}.max_train_size", 1, 10**12
            )
    resolved = dataset.get("source") != "uploaded" or "sha256" in dataset
    if cv_type == "group_kfold" and resolved and not dataset.get("groups"):
        raise InvalidSpec(
            "group_kfold needs objective.dataset.groups (a column)", field=f"{field}.type"
        )
    return out


def _parse_outer_fold(raw: Any) -> dict[str, Any] | None:
    """Nested CV: this study tunes on outer fold ``index``'s training rows, tests on the rest."""
    field = "objective.outer_fold"
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidSpec("must be an object with n_splits, index and seed", field=field)
    for key in raw:
        if key not in ("n_splits", "index", "seed"):
            raise InvalidSpec(
                "unknown field (allowed: n_splits, index, seed)", field=f"{field}.{key}"
            )
    n_splits = _int(raw.get("n_splits", 5), f"{field}.n_splits", 2, 100)
    index = _int(raw.get("index"), f"{field}.index", 0, n_splits - 1)
    return {
        "n_splits": n_splits,
        "index": index,
        "seed": _int(raw.get("seed", 0), f"{field}.seed", 0, 2**32 - 1),
    }


def _parse_test_size(raw: Any, field: str = "objective.test_size") -> float | None:
    if raw is None:
        return None
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int | float)
        or not MIN_TEST_SIZE <= raw <= MAX_TEST_SIZE
    ):
        raise InvalidSpec(f"must be a fraction in [{MIN_TEST_SIZE}, {MAX_TEST_SIZE}]", field=field)
    return float(raw)


def _parse_preprocessing(raw: Any) -> list[str]:
    field = "objective.preprocessing"
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise InvalidSpec(f"must be a list of steps from {list(PREPROCESSING)}", field=field)
    for i, step in enumerate(raw):
        if step not in PREPROCESSING:
            raise InvalidSpec(f"must be one of {list(PREPROCESSING)}", field=f"{field}[{i}]")
    return list(raw)


def _int(raw: Any, field: str, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise InvalidSpec(f"must be an integer in [{low}, {high}]", field=field)
    return raw


def check_estimator_params(objective: Mapping[str, Any] | None, names: Sequence[str]) -> None:
    """Every tuned parameter must be a parameter of the estimator (by name).

    Checked here for the default allow-list only (nothing else is imported before
    the operator's policy allowed it); :meth:`~.policy.ObjectivePolicy.check_spec`
    checks every allowed class, with the values.
    """
    if objective is None or objective.get("kind") != "sklearn" or objective.get("pipeline"):
        return  # a pipeline's names are checked with the operator's policy at creation
    path = str(objective["estimator"])
    if path not in default_estimators():
        return
    known = set(estimator_options(path))
    for i, name in enumerate(names):
        if name not in known:
            raise InvalidSpec(
                f"{name!r} is not a parameter of {path} (it has: {', '.join(sorted(known))})",
                field=f"parameters[{i}].name",
            )
    for key in objective.get("fixed_params", {}):
        if key not in known:
            raise InvalidSpec(
                f"{key!r} is not a parameter of {path}", field=f"objective.fixed_params.{key}"
            )


def has_holdout(objective: Mapping[str, Any] | None) -> bool:
    """Whether the objective keeps rows out of tuning to evaluate the winner on once."""
    return bool(objective and (objective.get("test_size") or objective.get("outer_fold")))
