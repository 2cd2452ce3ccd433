"""The stopping rules' view of a study's other trials, answered with SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ...core.trials import Goal, Metric, TrialState
from ..db.models import MeasurementRow, TrialRow


class SqlPeerView:
    """Implements ``tuneforge.core.stopping.PeerView`` for one trial of one study.

    Peers are the study's other trials except failed ones (a failed trial's
    retry repeats its parameters, so counting both would count them twice).
    """

    def __init__(
        self, session: Session, study_id: int, metric: Metric, exclude_trial_id: int
    ) -> None:
        self._session = session
        self._study_id = study_id
        self._metric = metric.name
        self._maximize = metric.goal == Goal.MAXIMIZE
        self._exclude = exclude_trial_id

    def _peer_measurements(self, *columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .join(TrialRow, TrialRow.id == MeasurementRow.trial_id)
            .where(
                MeasurementRow.study_id == self._study_id,
                MeasurementRow.trial_id != self._exclude,
                TrialRow.state != TrialState.FAILED.value,
            )
        )

    def values_at(self, step: int) -> list[float]:
        """The metric at exactly ``step`` for every other trial that reported it there."""
        rows = self._session.scalars(
            self._peer_measurements(MeasurementRow.values).where(MeasurementRow.step == step)
        ).all()
        return [float(v[self._metric]) for v in rows if self._metric in v]

    def best_until(self, step: int) -> list[float]:
        """Per other trial that reported the metric at ``step`` or later: its best value up to
        ``step``. One aggregate query over ``ix_measurements_study_step``; only one number
        per trial leaves the database."""
        value = MeasurementRow.values[self._metric].as_float()
        reached = (
            select(MeasurementRow.trial_id)
            .where(
                MeasurementRow.study_id == self._study_id,
                MeasurementRow.step >= step,
                value.is_not(None),
            )
            .distinct()
        )
        best = (func.max if self._maximize else func.min)(value)
        rows = self._session.scalars(
            self._peer_measurements(best)
            .where(
                MeasurementRow.step <= step,
                value.is_not(None),
                MeasurementRow.trial_id.in_(reached),
            )
            .group_by(MeasurementRow.trial_id)
        ).all()
        return [float(v) for v in rows if v is not None]

    def n_completed(self) -> int:
        return int(
            self._session.scalar(
                select(func.count()).where(
                    TrialRow.study_id == self._study_id,
                    TrialRow.state == TrialState.COMPLETED.value,
                )
            )
            or 0
        )
