"""Sending tasks to the bundled Celery workers (by name: the server imports no worker code)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger("tuneforge.queue")

RUN_TRIAL = "tuneforge.run_trial"
EVALUATE = "tuneforge.evaluate_study"
TASK_NAMES = {"trial": RUN_TRIAL, "evaluate": EVALUATE}


class TaskQueue(Protocol):
    def send(self, kind: str, study_id: int, task_id: str) -> None: ...

    def revoke(self, task_ids: Sequence[str]) -> None: ...


class CeleryQueue:
    """Publishes tasks to the broker; the Celery app is created on first use."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self._app: Any = None

    def _celery(self) -> Any:
        if self._app is None:
            from celery import Celery

            self._app = Celery("tuneforge-server", broker=self.broker_url)
            self._app.conf.update(
                broker_connection_retry_on_startup=True,
                broker_transport_options={"max_retries": 3},
                task_ignore_result=True,
            )
        return self._app

    def send(self, kind: str, study_id: int, task_id: str) -> None:
        self._celery().send_task(TASK_NAMES[kind], args=[study_id], task_id=task_id)

    def revoke(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            self._celery().control.revoke(list(task_ids))
