"""What a study spec may name: the operator's policy for managed objectives (no I/O).

A study spec names code (``objective.callable``, ``objective.estimator`` and its
options) and data (``objective.dataset.path``). On a shared server those run on
the workers, so everything named is checked against what the server's operator
configured, never against a pattern alone:

- python objectives only from the listed modules (none by default);
- estimators from an allow-list (see :mod:`.estimators`), options checked;
- data files only under the listed data roots, after following symlinks;
  URLs only with a listed scheme (none by default).

The API server checks a spec when a study is created; the workers check it
again with their own policy before they import or read anything. Messages name
the field and the rule; they never say whether a file outside the roots exists.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import InvalidSpec
from .estimators import (
    THREAD_OPTIONS,
    check_option,
    check_plain_string,
    check_threads,
    check_values,
    default_estimators,
    default_transformers,
    estimator_options,
    load_class,
    missing_extra,
)
from .space import Parameter

#: In ``python_modules``, allows every module (only for a server nobody else can reach).
ANY_MODULE = "*"
CALLABLE_FIELD = "objective.callable"
ESTIMATOR_FIELD = "objective.estimator"
PATH_FIELD = "objective.dataset.path"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
OUTSIDE = (
    "must name a file under this server's data roots (relative paths start at the first "
    "root; '..', '~' and symlinks leading out are refused)"
)


@dataclass(frozen=True)
class ObjectivePolicy:
    """What managed objectives may name on one server (or worker).

    ``python_modules``: modules (or packages: ``team.objectives`` covers
    ``team.objectives.nlp``) whose functions ``kind: python`` may call; ``"*"``
    allows any. ``estimators``: estimator class paths allowed besides the
    default list (``default_estimators=False`` drops that list). ``data_roots``:
    absolute directories csv/parquet files must lie under. ``url_schemes``:
    schemes (``https``, ``s3``) a dataset path may use. ``max_n_jobs``: the
    largest ``n_jobs`` an estimator may take.
    """

    python_modules: tuple[str, ...] = ()
    estimators: tuple[str, ...] = ()
    default_estimators: bool = True
    data_roots: tuple[str, ...] = ()
    url_schemes: tuple[str, ...] = ()
    max_n_jobs: int = 1

    def __post_init__(self) -> None:
        roots = tuple(posixpath.normpath(r) for r in self.data_roots if r)
        if any(not posixpath.isabs(r) for r in roots):
            raise ValueError(f"data roots must be absolute paths: {self.data_roots!r}")
        object.__setattr__(self, "data_roots", roots)
        object.__setattr__(self, "url_schemes", tuple(s.lower() for s in self.url_schemes))
        if self.max_n_jobs < 1:
            raise ValueError("max_n_jobs must be at least 1")

    def trusting_local_user(self, working_directory: str) -> ObjectivePolicy:
        """The policy of a local run, whose user wrote the spec and runs its trials in their
        own processes (the embedded server): any python module, and ``working_directory``
        as the first data root."""
        roots = (working_directory, *(r for r in self.data_roots if r != working_directory))
        return replace(self, python_modules=(ANY_MODULE,), data_roots=roots)

    # ---- code ------------------------------------------------------------------
    def check_callable(self, target: str) -> None:
        """``module:function`` may be called only from a configured module."""
        module, _, name = target.partition(":")
        if name.startswith("__"):
            raise InvalidSpec("must not name a dunder function", field=CALLABLE_FIELD)
        if ANY_MODULE in self.python_modules:
            return
        if not any(module == m or module.startswith(m + ".") for m in self.python_modules):
            listed = ", ".join(self.python_modules) or "none"
            raise InvalidSpec(
                f"module {module!r} is not allowed for python objectives on this server "
                f"(allowed: {listed}); the server's operator must list it in "
                "TUNEFORGE_PYTHON_OBJECTIVE_MODULES",
                field=CALLABLE_FIELD,
            )

    def allows_estimator(self, path: str) -> bool:
        """Whether ``path`` is on this policy's allow-list (a string check; no import)."""
        if path in self.estimators:
            return True
        return self.default_estimators and path in default_estimators()

    def check_estimator(self, path: str, field: str = ESTIMATOR_FIELD) -> frozenset[str]:
        """The class's constructor options, if it is allowed (and importable)."""
        if not self.allows_estimator(path):
            missing = missing_extra(path)
            if missing is not None:
                raise InvalidSpec(missing, field=field)
            raise InvalidSpec(
                f"{path!r} is not on this server's estimator allow-list (public scikit-learn "
                "classifiers and regressors that take no other estimator, xgboost / lightgbm "
                "when installed, and the classes the operator lists in TUNEFORGE_ESTIMATORS)",
                field=field,
            )
        try:
            return estimator_options(path)
        except Exception:
            raise InvalidSpec(
                f"{path!r} cannot be built on this server (not installed, or needs arguments)",
                field=field,
            ) from None

    def check_step(self, path: str, *, final: bool, field: str) -> frozenset[str]:
        """A pipeline step's constructor options: the last step is an allowed estimator,
        the others allowed transformers (or classes the operator lists)."""
        if final or path in self.estimators:
            return self.check_estimator(path, field)
        if not (self.default_estimators and path in default_transformers()):
            raise InvalidSpec(
                f"{path!r} is not an allowed pipeline step: steps before the last one are "
                "scikit-learn transformers (preprocessing, decomposition, feature_selection, "
                "impute, kernel_approximation, random_projection) or classes the operator "
                "lists in TUNEFORGE_ESTIMATORS; the last step is a classifier or regressor",
                field=field,
            )
        return estimator_options(path)

    def step_class(self, path: str) -> Any:
        """The class of a pipeline step, imported only when this policy allows it."""
        if not (self.allows_estimator(path) or path in default_transformers()):
            raise InvalidSpec(
                f"{path!r} is not an allowed pipeline step", field="objective.pipeline"
            )
        return load_class(path)

    def check_options(self, path: str, options: Mapping[str, Any], prefix: str) -> None:
        """Constructor options (``fixed_params`` or one trial's parameters) of ``path``."""
        known = self.check_estimator(path)
        for name, value in options.items():
            field = f"{prefix}.{name}"
            check_plain_string(str(name), field)
            check_option(name, value, field, max_n_jobs=self.max_n_jobs)
            if name not in known:
                raise InvalidSpec(f"{name!r} is not a parameter of {path}", field=field)

    def check_parameters(self, path: str, parameters: Sequence[Parameter]) -> None:
        """Tuned parameters are constructor options too: same names and values rules."""
        known = self.check_estimator(path)
        for i, p in enumerate(parameters):
            field = f"parameters[{i}]"
            check_option(p.name, None, f"{field}.name", max_n_jobs=self.max_n_jobs)
            if p.name not in known:
                raise InvalidSpec(f"{p.name!r} is not a parameter of {path}", field=f"{field}.name")
            if p.name in THREAD_OPTIONS:
                for end in ("low", "high"):
                    check_threads(_whole(getattr(p, end)), f"{field}.{end}", self.max_n_jobs)
            for j, value in enumerate(p.values):
                check_option(p.name, value, f"{field}.values[{j}]", max_n_jobs=self.max_n_jobs)

    # ---- data ------------------------------------------------------------------
    def data_location(self, path: str) -> str:
        """Where a dataset path points, checked lexically: a URL with an allowed scheme
        (returned as is) or a normalized absolute path under a data root."""
        if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in path):
            raise InvalidSpec(
                "must not contain control characters or lone surrogates", field=PATH_FIELD
            )
        scheme = _SCHEME.match(path)
        if scheme and (len(scheme.group(1)) > 1 or "://" in path):
            return self._url(path, scheme.group(1).lower())
        if not self.data_roots:
            raise InvalidSpec(
                "data files are not allowed on this server: its operator has configured no "
                "data roots (TUNEFORGE_DATA_ROOTS); use a bundled dataset (source: sklearn)",
                field=PATH_FIELD,
            )
        parts = re.split(r"[/\\]", path)
        if ".." in parts or path.startswith("~"):
            raise InvalidSpec(OUTSIDE, field=PATH_FIELD)
        candidate = posixpath.normpath(posixpath.join(self.data_roots[0], path))
        if not self.under_roots(candidate, self.data_roots):
            raise InvalidSpec(OUTSIDE, field=PATH_FIELD)
        return candidate

    def resolve_data_path(self, path: str, realpath: Callable[[str], str]) -> str:
        """:meth:`data_location`, then the file's real path (``realpath`` follows symlinks,
        e.g. ``os.path.realpath``) must still lie under a root's real path."""
        location = self.data_location(path)
        if is_url(location):
            return location
        real = realpath(location)
        if not self.under_roots(real, tuple(realpath(r) for r in self.data_roots)):
            raise InvalidSpec(OUTSIDE, field=PATH_FIELD)
        return real

    @staticmethod
    def under_roots(path: str, roots: Sequence[str]) -> bool:
        """Whether ``path`` is a root or lies below one (both normalized)."""
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def _url(self, path: str, scheme: str) -> str:
        if scheme == "file":  # a path in disguise: it would bypass the data roots
            raise InvalidSpec(
                "file: URLs are not allowed; give a path under the data roots", field=PATH_FIELD
            )
        if scheme not in self.url_schemes:
            allowed = ", ".join(self.url_schemes) or "none"
            raise InvalidSpec(
                f"URL scheme {scheme!r} is not allowed on this server (allowed: {allowed}); "
                "the server's operator lists schemes in TUNEFORGE_DATA_URL_SCHEMES",
                field=PATH_FIELD,
            )
        return path

    # ---- a whole objective -----------------------------------------------------
    def check_spec(
        self, objective: Mapping[str, Any] | None, parameters: Sequence[Parameter]
    ) -> None:
        """A normalized objective and the study's tuned parameters, at creation."""
        if objective is None:
            return
        if objective["kind"] == "python":
            self.check_callable(objective["callable"])
            return
        if objective.get("pipeline"):
            from .pipelines import check_pipeline

            check_pipeline(objective["pipeline"], parameters, self)
        else:
            path = objective["estimator"]
            fixed = objective.get("fixed_params", {})
            self.check_options(path, fixed, "objective.fixed_params")
            self.check_parameters(path, parameters)
            check_values(path, fixed, lambda n: f"objective.fixed_params.{n}", ESTIMATOR_FIELD)
            _check_parameter_values(path, parameters)
        self._check_data(objective["dataset"])

    def check_run(self, objective: Mapping[str, Any], params: Mapping[str, Any]) -> None:
        """What a worker checks before it runs one trial (or the held-out evaluation)."""
        if objective["kind"] == "python":
            self.check_callable(objective["callable"])
            return
        if objective.get("pipeline"):
            from .pipelines import check_run

            check_run(objective["pipeline"], params, self)
        else:
            path = objective["estimator"]
            self.check_options(path, objective.get("fixed_params", {}), "objective.fixed_params")
            self.check_options(path, params, "params")
        self._check_data(objective["dataset"])

    def _check_data(self, dataset: Mapping[str, Any]) -> None:
        """A file dataset's path (uploaded and bundled datasets name no path)."""
        if dataset["source"] in ("csv", "parquet"):
            self.data_location(dataset["path"])


def _always(field: str) -> Callable[[str], str]:
    """A field function that names ``field`` whatever the option."""
    return lambda _: field


def _check_parameter_values(path: str, parameters: Sequence[Parameter]) -> None:
    """Each tuned parameter's values (or bounds) against the class's own constraints."""
    from .pipelines import probe_values

    for i, p in enumerate(parameters):
        for end, value in probe_values(p):
            field = f"parameters[{i}].{end}"
            check_values(path, {p.name: value}, _always(field), field)


#: The operator's defaults: no python objectives, no data files, no URLs, the
#: default estimator list, ``n_jobs`` at most 1. What a service applies when its
#: caller names no policy.
STRICT = ObjectivePolicy()


def comma_list(value: object) -> object:
    """A setting given as ``a, b,c`` (an environment variable) as ``("a", "b", "c")``;
    other values (already a list) as they are."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def is_url(path: str) -> bool:
    """``scheme://...`` (http, s3, file, ...)."""
    return "://" in path


def _whole(value: float | None) -> Any:
    return int(value) if value is not None and float(value).is_integer() else value


def estimator_class(policy: ObjectivePolicy, path: str) -> Any:
    """The estimator class at ``path``, imported only when ``policy`` allows it."""
    policy.check_estimator(path)
    return load_class(path)


__all__ = ["ANY_MODULE", "ObjectivePolicy", "comma_list", "estimator_class", "is_url"]
