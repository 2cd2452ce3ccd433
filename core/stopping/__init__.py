"""Early-stopping rules behind one interface, looked up by name.

A study's ``early_stopping`` object names a rule and its options:
``{"rule": "median", "n_warmup_steps": 2}``. Adding a rule is one module
defining a :class:`StoppingRule` subclass plus its entry in :data:`_MODULES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..decisions import CONTINUE, Continue, Pause, Prune, TrialDecision, WorkerAction
from ..errors import InvalidSpec
from ..options import OptionsModel
from .base import PeerView, StoppingContext, StoppingRule, TrialsPeerView

__all__ = [
    "CONTINUE",
    "Continue",
    "Pause",
    "PeerView",
    "Prune",
    "StoppingContext",
    "StoppingRule",
    "TrialDecision",
    "TrialsPeerView",
    "WorkerAction",
    "create_rule",
    "get_rule",
    "options_models",
    "rule_names",
    "validate_early_stopping",
]

#: name -> "module:ClassName", imported on first use.
_MODULES: dict[str, str] = {
    "none": "none:NoStopping",
    "median": "median:MedianRule",
    "asha": "asha:ASHARule",
    "hyperband": "hyperband:HyperbandRule",
    "bohb": "bohb:BOHBRule",
    "percentile": "percentile:PercentileRule",
    "threshold": "threshold:ThresholdRule",
    "patience": "patience:PatienceRule",
    "wilcoxon": "wilcoxon:WilcoxonRule",
    "pbt": "pbt:PBTRule",
}

#: The rule of a study that gives no ``early_stopping``.
DEFAULT_RULE = "none"


def rule_names() -> list[str]:
    """Every name a study may put in ``early_stopping.rule``."""
    return sorted(_MODULES)


def get_rule(name: str) -> type[StoppingRule]:
    """The rule class registered under ``name``; :class:`InvalidSpec` if unknown."""
    target = _MODULES.get(name)
    if target is None:
        choices = ", ".join(rule_names())
        raise InvalidSpec(
            f"unknown early-stopping rule {name!r} (choose one of: {choices})",
            field="early_stopping.rule",
        )
    module_name, class_name = target.split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    cls: type[StoppingRule] = getattr(module, class_name)
    return cls


def options_models() -> dict[str, type[OptionsModel]]:
    """Each registered rule's typed options (``model_json_schema()`` gives its schema)."""
    return {name: get_rule(name).options_model for name in rule_names()}


def validate_early_stopping(spec: Any, fidelity: Any) -> dict[str, Any]:
    """Check a study's ``early_stopping``; return ``{"rule": name, **options}`` with defaults.

    ``None`` means the default rule, ``none``. ``fidelity`` is the study's
    fidelity object (or ``None``); rules that need one check it.
    """
    if spec is None:
        spec = {"rule": DEFAULT_RULE}
    if not isinstance(spec, Mapping):
        raise InvalidSpec('must be an object such as {"rule": "median"}', field="early_stopping")
    name = spec.get("rule")
    if not isinstance(name, str):
        choices = ", ".join(rule_names())
        raise InvalidSpec(
            f"must be a string naming a rule (one of: {choices})", field="early_stopping.rule"
        )
    options = {key: value for key, value in spec.items() if key != "rule"}
    fidelity_spec = fidelity if isinstance(fidelity, Mapping) else None
    return {"rule": name, **get_rule(name).validate_options(options, fidelity_spec)}


def create_rule(
    spec: Mapping[str, Any] | None, fidelity: Mapping[str, Any] | None = None
) -> StoppingRule:
    """A rule instance for a study's validated ``early_stopping`` (``None`` means ``none``)
    and its ``fidelity``."""
    if spec is None:
        spec = {"rule": DEFAULT_RULE}
    options = {key: value for key, value in spec.items() if key != "rule"}
    return get_rule(spec["rule"])(options, fidelity)
