"""What the server reads back from a real Redis broker (api/queue.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis as redis_client

from tests.e2e.conftest import PrivateRedis
from tuneforge.api.queue import REDIS_QUEUE, REDIS_UNACKED, CeleryQueue


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.kill()


def test_held_task_ids_are_the_queued_and_the_unacknowledged_tasks(
    private_redis: PrivateRedis,
) -> None:
    queue = CeleryQueue(private_redis.url)
    queue.send("trial", 1, "task-a")
    queue.send("evaluate", 1, "task-b")
    assert queue.held_task_ids() == {"task-a", "task-b"}
    broker = redis_client.Redis.from_url(private_redis.url)
    taken = broker.rpop(REDIS_QUEUE)  # what a worker's fetch does, then kombu keeps it:
    assert taken is not None
    broker.hset(REDIS_UNACKED, "tag-1", json.dumps([json.loads(taken), "celery", "celery"]))
    broker.lpush(REDIS_QUEUE, b"not a celery message")
    assert queue.held_task_ids() == {"task-a", "task-b"}
    broker.flushall()  # Redis restarted empty
    assert queue.held_task_ids() == set()


def test_a_broker_that_cannot_be_listed_says_so() -> None:
    assert CeleryQueue("amqp://guest@127.0.0.1//").held_task_ids() is None
