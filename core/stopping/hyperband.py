"""Hyperband: successive halving in several brackets, each run as ASHA.

With the rungs of the ``asha`` rule (``min * reduction_factor**k`` below
``fidelity.max``, ``s_max`` of them), bracket ``b`` (0 … ``s_max``) decides
trials first at rung ``b``: bracket 0 is ASHA's most aggressive schedule,
bracket ``s_max`` trains every trial to ``max``. As in the Hyperband paper
(Li et al., JMLR 2018), one round of brackets gives bracket ``b``
``ceil((s_max + 1) / (s + 1) * reduction_factor**s)`` configurations, ``s =
s_max - b``, so that each bracket spends about the same resource. Trials are
dealt to brackets in that proportion by a smooth weighted round robin over
their numbers (a retry keeps the bracket of the trial it repeats), so even a
short study sees every bracket, spread evenly.

Inside a bracket the rule is ASHA: a trial is ranked only among its
bracket's trials, paused outside the top ``1 / reduction_factor`` of a rung,
and promoted when it enters it (see :mod:`.asha`).
"""

from __future__ import annotations

import math
from functools import lru_cache

from ..trials import Trial
from .asha import ASHAOptions, ASHARule


class HyperbandOptions(ASHAOptions):
    """Options of the ``hyperband`` rule: ASHA's, ranked within each bracket."""


def bracket_sizes(n_rungs: int, eta: int) -> list[int]:
    """Configurations of bracket ``b`` (first decided at rung ``b``) in one Hyperband round."""
    s_max = n_rungs
    return [math.ceil((s_max + 1) / (s_max - b + 1) * eta ** (s_max - b)) for b in range(s_max + 1)]


@lru_cache(maxsize=64)
def bracket_schedule(sizes: tuple[int, ...]) -> tuple[int, ...]:
    """One round of brackets, bracket ``b`` appearing ``sizes[b]`` times, spread evenly
    (smooth weighted round robin; ties go to the lower bracket)."""
    total = sum(sizes)
    credit = [0] * len(sizes)
    out = []
    for _ in range(total):
        credit = [c + w for c, w in zip(credit, sizes, strict=True)]
        pick = max(range(len(sizes)), key=lambda b: (credit[b], -b))
        credit[pick] -= total
        out.append(pick)
    return tuple(out)


class HyperbandRule(ASHARule):
    """ASHA in Hyperband's brackets (see the module docstring)."""

    name = "hyperband"
    options_model = HyperbandOptions

    def bracket_of(self, trial: Trial) -> int:
        """The bracket of a trial, from its number (a retry's: the number it repeats)."""
        schedule = bracket_schedule(tuple(bracket_sizes(len(self.rungs()), self.eta)))
        root = trial.retry_of if trial.retry_of is not None else trial.number
        return schedule[root % len(schedule)]

    def _group(self, trial: Trial) -> int:
        return self.bracket_of(trial)

    def _first_rung(self, trial: Trial) -> int:
        return self.bracket_of(trial)

    def _label(self, trial: Trial) -> str:
        return f"hyperband bracket {self.bracket_of(trial)}"
