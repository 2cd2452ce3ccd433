"""Suggestion algorithms behind one interface, looked up by name.

Adding an algorithm is one module defining an :class:`Algorithm` subclass plus
its entry in :data:`_MODULES`; the contract test then runs it automatically.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidSpec
from ..options import OptionsModel
from ..space import SearchSpace
from .base import Algorithm, Params, Suggestion, SuggestRequest

__all__ = [
    "Algorithm",
    "Params",
    "SuggestRequest",
    "Suggestion",
    "algorithm_names",
    "create_algorithm",
    "get_algorithm",
    "options_models",
    "validate_algorithm",
]

#: name -> "module:ClassName", imported on first use.
_MODULES: dict[str, str] = {
    "auto": "auto:AutoSearch",
    "random": "random_search:RandomSearch",
    "grid": "grid:GridSearch",
    "sobol": "sobol:SobolSearch",
    "gp": "gp:GPSearch",
    "tpe": "tpe:TPESearch",
    "cmaes": "cmaes_search:CMAESSearch",
    "genetic": "genetic:GeneticSearch",
    "nsga2": "nsga2:NSGA2Search",
    "ehvi": "ehvi:EHVISearch",
}


def algorithm_names() -> list[str]:
    """Every name a study may put in ``algorithm``."""
    return sorted(_MODULES)


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered under ``name``; :class:`InvalidSpec` if unknown."""
    target = _MODULES.get(name)
    if target is None:
        choices = ", ".join(algorithm_names())
        raise InvalidSpec(
            f"unknown algorithm {name!r} (choose one of: {choices})", field="algorithm"
        )
    module_name, class_name = target.split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    cls: type[Algorithm] = getattr(module, class_name)
    return cls


def options_models() -> dict[str, type[OptionsModel]]:
    """Each registered algorithm's typed options (``model_json_schema()`` gives its schema)."""
    return {name: get_algorithm(name).options_model for name in algorithm_names()}


def validate_algorithm(name: Any, options: Any, space: SearchSpace) -> dict[str, Any]:
    """Check a study's ``algorithm`` and ``algorithm_options``; return the full options."""
    if not isinstance(name, str):
        raise InvalidSpec("must be a string", field="algorithm")
    if not isinstance(options, Mapping):
        raise InvalidSpec("must be an object", field="algorithm_options")
    return get_algorithm(name).validate_options(options, space)


def create_algorithm(name: str, options: Mapping[str, Any], space: SearchSpace) -> Algorithm:
    """An algorithm instance ready to suggest for a study."""
    del space
    return get_algorithm(name)(options)
