"""Population-based training (PBT): exploit the better members' checkpoints, explore params.

``{"rule": "pbt", "population": 8, "interval": 4, "quantile": 0.25, "perturb": 0.2}``

The study trains at most ``population`` trials (failed ones are replaced: see
:meth:`PBTRule.member_limit`). Every ``interval`` steps a member's measurement
is ranked among the members at the same boundary step: by their value at the
first step at or past it (as ASHA ranks a rung), or, for members still inside
the interval before it (workers never wait for each other), by their newest
value; members further behind are left out. A member in the
bottom ``quantile`` is told to **exploit**: the reply's action
``{"type": "exploit", "from_trial": 7, "params": {...}, "step": 8}`` names a
donor drawn from the top ``quantile`` and the donor's params **explored**:

- with probability ``resample_probability`` a parameter is drawn anew from its
  range (on its own scale);
- otherwise a float, int or discrete parameter moves up or down (at random) by
  ``perturb`` of its range on its own scale (of ``log(high / low)`` for a log
  scale), clipped to its bounds, and a categorical one keeps the donor's value;
- a conditional parameter that becomes active is drawn anew.

The worker loads the donor's checkpoint, sets the new params and trains on; the
service records the step in the trial's ``metadata.pbt_history``. Everything is
a pure function of the measurements and the rule's ``seed``: the same history
gives the same donors and the same params. A member never exploits a donor
whose value ties its own, nor below
``1 / quantile`` ranked members (``floor(n * quantile)`` must be at least 1), nor
at the fidelity's last step (nothing is left to train).

Reference: Jaderberg et al., "Population Based Training of Neural Networks" (2017).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from ..decisions import CONTINUE, TrialDecision, WorkerAction
from ..options import OptionsModel
from ..space import ParamType, ParamValue, SearchSpace
from ..trials import Goal, Metric, Trial, TrialState
from .asha import value_at_rung
from .base import RuleOptions, StoppingContext, StoppingRule, fidelity_max, metric_series

#: ``WorkerAction.kind`` of PBT's exploit/explore step.
EXPLOIT = "exploit"


class PBTOptions(RuleOptions):
    """Options of the ``pbt`` rule (see the module docstring)."""

    population: int = Field(
        8, ge=2, le=10_000, description="How many trials the study trains at most."
    )
    interval: int = Field(
        4, ge=1, le=2**31 - 1, description="Steps between exploit/explore decisions."
    )
    quantile: float = Field(
        0.25, gt=0.0, le=0.5, description="Bottom share that exploits; top share that donates."
    )
    perturb: float = Field(
        0.2, gt=0.0, le=1.0, description="How far explore moves a number, as a share of its range."
    )
    resample_probability: float = Field(
        0.25, ge=0.0, le=1.0, description="Chance that explore draws a parameter anew."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of donor choice and explore.")


class PBTRule(StoppingRule):
    """Bottom-quantile members copy a top-quantile member's checkpoint and perturb its params."""

    name = "pbt"
    options_model: ClassVar[type[OptionsModel]] = PBTOptions
    sees_trials = True
    exploits = True

    @property
    def interval(self) -> int:
        """Steps between decisions."""
        return int(self.options["interval"])

    def member_limit(self) -> int | None:
        """The population: suggest never starts more non-failed trials than this."""
        return int(self.options["population"])

    def needs_others(self, trial: Trial, metric: Metric) -> bool:
        """Only a measurement that crosses an interval boundary is ranked."""
        return self._boundary(trial, metric) is not None

    def next_decision_step(self, trial: Trial, step: int) -> int | None:
        """The next multiple of ``interval`` above ``step``; ``None`` when it is at or past
        the fidelity's last step (no exploit is left)."""
        del trial
        boundary = (step // self.interval + 1) * self.interval
        top = fidelity_max(self.fidelity)
        return None if top is not None and boundary >= top else boundary

    def decide(self, ctx: StoppingContext) -> TrialDecision:
        """Exploit and explore when the trial crossed a boundary in the bottom quantile."""
        boundary = self._boundary(ctx.trial, ctx.metric)
        if boundary is None or ctx.space is None:
            return CONTINUE
        ranked = ranked_at(boundary, [*ctx.others, ctx.trial], ctx.metric, self.interval)
        k = math.floor(len(ranked) * float(self.options["quantile"]))
        position = next((i for i, (_, t) in enumerate(ranked) if t.number == ctx.trial.number), 0)
        if k < 1 or position < len(ranked) - k:
            return CONTINUE
        rng = np.random.default_rng([int(self.options["seed"]), ctx.trial.number, boundary])
        value, donor = ranked[int(rng.integers(k))]
        own = ranked[position][0]
        if value == own:  # a tie (e.g. a copy of the donor): nothing better to take
            return CONTINUE
        params = explore(
            ctx.space,
            donor.params,
            rng,
            perturb=float(self.options["perturb"]),
            resample=float(self.options["resample_probability"]),
        )
        step = metric_series(ctx.trial, ctx.metric.name)[-1][0]
        reason = (
            f"pbt: at step {boundary} {ctx.metric.name} {own:.6g} ranks {position + 1} of "
            f"{len(ranked)}; exploits trial {donor.number} ({value:.6g})"
        )
        details = {"from_trial": donor.number, "params": params, "step": step}
        return WorkerAction(EXPLOIT, details, reason=reason)

    def _boundary(self, trial: Trial, metric: Metric) -> int | None:
        """The highest multiple of ``interval`` the newest measurement crossed (not at the
        fidelity's last step), if any."""
        series = metric_series(trial, metric.name)
        if not series:
            return None
        step = series[-1][0]
        before = series[-2][0] if len(series) > 1 else 0
        top = fidelity_max(self.fidelity)
        if top is not None and step >= top:
            return None
        boundary = (step // self.interval) * self.interval
        return boundary if boundary > before and boundary > 0 else None


def ranked_at(
    boundary: int, trials: Sequence[Trial], metric: Metric, interval: int
) -> list[tuple[float, Trial]]:
    """``(value, trial)`` of every non-failed member at ``boundary``, best first (ties: lower
    number first): its value at the first step at or past ``boundary``, or, for a member
    still inside the interval before it (its newest step above ``boundary - interval``), its
    newest value. Members further behind are left out."""
    sign = -1.0 if metric.goal == Goal.MAXIMIZE else 1.0
    rows = []
    for trial in trials:
        if trial.state == TrialState.FAILED:
            continue
        series = metric_series(trial, metric.name)
        value = value_at_rung(series, boundary)
        if value is None and series and series[-1][0] > boundary - interval:
            value = series[-1][1]
        if value is not None and math.isfinite(value):
            rows.append((value, trial))
    return sorted(rows, key=lambda row: (sign * row[0], row[1].number))


def explore(
    space: SearchSpace,
    params: Mapping[str, Any],
    rng: np.random.Generator,
    *,
    perturb: float,
    resample: float,
) -> dict[str, ParamValue]:
    """The donor's ``params`` explored (see the module docstring), valid in ``space``."""
    u = space.encode(params)
    for i, param in enumerate(space.parameters):
        draw, sign, fresh = rng.random(), rng.choice((-1.0, 1.0)), rng.random()
        if np.isnan(u[i]) or draw < resample:
            u[i] = fresh  # inactive ones are drawn too, in case a new parent value needs them
        elif param.type != ParamType.CATEGORICAL:
            u[i] = _moved(param.encode(params[param.name]), sign * perturb, param.n_choices)
    return space.validate_params(space.decode(u), "params")


def _moved(u: float, delta: float, n_choices: int | None) -> float:
    """A unit-cube coordinate moved by ``delta``, at least one value for a finite set."""
    if n_choices is not None:
        delta = math.copysign(max(abs(delta), 1.0 / n_choices), delta)
    return min(1.0, max(0.0, u + delta))
