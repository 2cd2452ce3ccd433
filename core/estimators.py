"""Which estimator classes a managed objective may name, and which constructor options.

The default allow-list is every public scikit-learn classifier and regressor that
can be built without arguments and takes no other estimator or function
(meta-estimators such as ``Pipeline`` or ``BaggingClassifier`` are left out),
plus the scikit-learn-style classes of xgboost and lightgbm when they are
installed. It is derived once per process, lazily; nothing here imports a class
whose path is not on the list.

Constructor options are checked generically: the name must be one of the
class's ``get_params()``, never ``memory`` or a callback, thread counts are
bounded, and values are JSON scalars (or lists of them) that do not look like
paths or URLs. Every failure is an :class:`~.errors.InvalidSpec` naming its field.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from .errors import InvalidSpec

#: Constructor arguments that take another estimator or a function: such classes are
#: meta-estimators and are not on the default list.
META_ARGUMENTS = frozenset(
    {
        "estimator",
        "estimators",
        "base_estimator",
        "final_estimator",
        "regressor",
        "classifier",
        "transformer",
        "transformers",
        "transformer_list",
        "steps",
        "func",
        "inverse_func",
        "score_func",
        "callback",
        "callbacks",
    }
)
#: scikit-learn-style classes of optional libraries (on the list when installed).
THIRD_PARTY = {
    "xgboost": ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor"),
    "lightgbm": ("LGBMClassifier", "LGBMRegressor"),
}
#: The extra that installs each optional library (``pip install 'tuneforge[xgboost]'``).
EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm"}
#: Modules whose plain transformers may be intermediate steps of a managed pipeline.
TRANSFORMER_MODULES = (
    "sklearn.preprocessing",
    "sklearn.decomposition",
    "sklearn.feature_selection",
    "sklearn.impute",
    "sklearn.kernel_approximation",
    "sklearn.random_projection",
)
#: Transformers of those modules that work on the target or a kernel, not on features.
NOT_FEATURE_TRANSFORMERS = frozenset(
    {"LabelBinarizer", "LabelEncoder", "MultiLabelBinarizer", "KernelCenterer"}
)
#: Options never accepted, whatever the estimator: a joblib cache directory (pickles it
#: loads later) and hooks that would run code.
FORBIDDEN_OPTIONS = {
    "memory": "would make the worker write (and later load) a cache in a directory of the "
    "spec's choice",
    "callbacks": "would run code on the workers",
    "callback": "would run code on the workers",
}
#: Options that set how many threads or processes one trial uses.
THREAD_OPTIONS = frozenset({"n_jobs", "nthread", "num_threads", "thread_count"})
MAX_OPTION_STRING = 200
MAX_OPTION_LIST = 100


@lru_cache(maxsize=1)
def default_estimators() -> frozenset[str]:
    """Public class paths (``sklearn.svm.SVC``) of the default allow-list."""
    from sklearn.utils import all_estimators

    paths = set()
    for name, cls in all_estimators(type_filter=["classifier", "regressor"]):
        if _plain(cls):
            path = _public_path(name, cls)
            if path is not None:
                paths.add(path)
    for module, names in THIRD_PARTY.items():
        if importlib.util.find_spec(module) is not None:
            paths.update(f"{module}.{name}" for name in names)
    return frozenset(paths)


@lru_cache(maxsize=1)
def default_transformers() -> frozenset[str]:
    """Public class paths of the transformers a pipeline step may use by default
    (``sklearn.decomposition.PCA``): plain transformers of :data:`TRANSFORMER_MODULES`."""
    from sklearn.utils import all_estimators

    paths = set()
    for name, cls in all_estimators(type_filter="transformer"):
        if name in NOT_FEATURE_TRANSFORMERS or not _plain(cls):
            continue
        path = _public_path(name, cls)
        if path is not None and path.rpartition(".")[0] in TRANSFORMER_MODULES:
            paths.add(path)
    return frozenset(paths)


def missing_extra(path: str) -> str | None:
    """Why ``path`` is unavailable when it names a class of an optional library that is
    not installed here (``None`` otherwise)."""
    module, _, name = path.partition(".")
    if module not in THIRD_PARTY or name not in THIRD_PARTY[module]:
        return None
    if importlib.util.find_spec(module) is not None:
        return None
    return (
        f"{path!r} needs {module}, which is not installed on this server: its operator "
        f"installs it with pip install 'tuneforge[{EXTRAS[module]}]' (on the server and "
        "the workers)"
    )


def _plain(cls: type) -> bool:
    """Buildable without arguments, and takes no estimator or function."""
    try:
        parameters = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return False
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty or p.name in META_ARGUMENTS:
            return False
    return True


def _public_path(name: str, cls: type) -> str | None:
    """``sklearn.svm.SVC`` for the class defined in ``sklearn.svm._classes``."""
    parts = cls.__module__.split(".")
    public = []
    for part in parts:
        if part.startswith("_"):
            break
        public.append(part)
    module = ".".join(public)
    try:
        if getattr(importlib.import_module(module), name, None) is cls:
            return f"{module}.{name}"
    except ImportError:
        return None
    return None


def load_class(path: str) -> Any:
    """The class at ``package.module.Class`` (import the module, take the attribute)."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@lru_cache(maxsize=256)
def estimator_options(path: str) -> frozenset[str]:
    """The constructor options of an allowed estimator class (``get_params(deep=False)``)."""
    return frozenset(load_class(path)().get_params(deep=False))


def check_option(name: str, value: Any, field: str, *, max_n_jobs: int) -> None:
    """One constructor option's value: no forbidden name, bounded threads, plain JSON data."""
    if name in FORBIDDEN_OPTIONS:
        raise InvalidSpec(f"{name!r} is not allowed: it {FORBIDDEN_OPTIONS[name]}", field=field)
    if name in THREAD_OPTIONS:
        check_threads(value, field, max_n_jobs)
        return
    if isinstance(value, list):
        if len(value) > MAX_OPTION_LIST:
            raise InvalidSpec(f"at most {MAX_OPTION_LIST} items", field=field)
        for i, item in enumerate(value):
            check_scalar(item, f"{field}[{i}]")
        return
    check_scalar(value, field)


def check_threads(value: Any, field: str, max_n_jobs: int) -> None:
    """``n_jobs`` and its aliases: None or a whole number in [1, max_n_jobs]."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= max_n_jobs:
        raise InvalidSpec(
            f"must be null or an integer in [1, {max_n_jobs}] (this server's limit of threads "
            "per trial, TUNEFORGE_MAX_N_JOBS; -1 'all cores' is not allowed)",
            field=field,
        )


def check_scalar(value: Any, field: str) -> None:
    """A JSON scalar an estimator may take: no objects, no paths, no URLs, finite numbers."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidSpec("must be a finite number", field=field)
        return
    if isinstance(value, str):
        check_plain_string(value, field)
        return
    raise InvalidSpec(
        "must be a number, a string, true/false, null or a list of those (no objects)",
        field=field,
    )


def check_plain_string(value: str, field: str) -> None:
    """A short option word (``'rbf'``, ``'balanced'``): not a path, a URL or a control code."""
    if len(value) > MAX_OPTION_STRING:
        raise InvalidSpec(f"at most {MAX_OPTION_STRING} characters", field=field)
    if any(c in value for c in "/\\") or value.startswith(("~", ".")) or "://" in value:
        raise InvalidSpec("must not be a path or a URL", field=field)
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidSpec("must not contain control characters or lone surrogates", field=field)


_PARAMETER_NAMED = re.compile(r"The '([^']+)' parameter")


def check_values(
    path: str, options: Mapping[str, Any], field_of: Callable[[str], str], fallback: str
) -> None:
    """The values of ``options`` against the class's own parameter constraints
    (scikit-learn's ``_parameter_constraints``), without fitting anything.

    Classes that declare no constraints (xgboost, lightgbm) are not checked here;
    their workers report a bad value as the trial's reason. A failure names the
    field of the offending option (``field_of(name)``), else ``fallback``.
    """
    try:
        estimator = load_class(path)(**options)
    except Exception as exc:
        raise InvalidSpec(
            f"{path} cannot be built with these options: {_first_line(exc)}", field=fallback
        ) from None
    validate = getattr(estimator, "_validate_params", None)
    if validate is None:
        return
    try:
        validate()
    except (ValueError, TypeError) as exc:
        match = _PARAMETER_NAMED.search(str(exc))
        field = field_of(match.group(1)) if match and match.group(1) in options else fallback
        raise InvalidSpec(_first_line(exc), field=field) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[: MAX_OPTION_STRING * 2]
