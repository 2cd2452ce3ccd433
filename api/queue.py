"""Sending tasks to the bundled Celery workers (by name: the server imports no worker code)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

log = logging.getLogger("tuneforge.queue")

RUN_TRIAL = "tuneforge.run_trial"
EVALUATE = "tuneforge.evaluate_study"
TASK_NAMES = {"trial": RUN_TRIAL, "evaluate": EVALUATE}
#: Where kombu's Redis transport keeps Celery's default queue and the messages a
#: worker has taken but not acknowledged yet (acks_late: until the task ends).
REDIS_QUEUE = "celery"
REDIS_UNACKED = "unacked"


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

    def held_task_ids(self) -> set[str] | None:
        """The ids of the tasks the broker still holds (queued, or taken by a worker and
        not yet acknowledged); ``None`` when this broker cannot be asked (not Redis)."""
        if not self.broker_url.startswith(("redis://", "rediss://", "unix://")):
            return None
        import redis

        client = redis.Redis.from_url(self.broker_url, socket_timeout=2)
        try:
            queued = client.lrange(REDIS_QUEUE, 0, -1)
            taken = client.hvals(REDIS_UNACKED)
        finally:
            client.close()
        return set(_task_ids(queued, unwrap=False)) | set(_task_ids(taken, unwrap=True))


def _task_ids(raw_messages: Iterable[bytes | str], unwrap: bool) -> Iterable[str]:
    """Task ids in kombu's JSON messages (``unwrap``: ``[message, exchange, key]`` entries)."""
    for raw in raw_messages:
        try:
            message = json.loads(raw)
            message = message[0] if unwrap else message
            yield str(message["headers"]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            continue  # not a Celery message: nothing of ours
