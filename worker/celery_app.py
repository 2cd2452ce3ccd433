"""The Celery application of the bundled workers. ``create_celery`` connects to nothing."""

from __future__ import annotations

from typing import Any

from celery import Celery

from .settings import WorkerSettings


def create_celery(settings: WorkerSettings | None = None) -> Celery:
    """A Celery app configured for long, idempotent training tasks.

    - ``acks_late`` + ``reject_on_worker_lost``: a task is acknowledged only
      after it finished, so a lost worker's task is delivered again;
    - prefetch 1: a busy worker never hoards queued tasks;
    - soft and hard time limits below the broker's visibility timeout;
    - a lost broker connection does not cancel running tasks (they report over HTTP,
      not through the broker) and is retried for ever;
    - no result backend: results live in tuneforge's database.

    docs/deploy.md ("Broker loss") explains each choice.
    """
    settings = settings or WorkerSettings()
    app = Celery("tuneforge", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.soft_time_limit_seconds,
        task_time_limit=settings.time_limit_seconds,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_ignore_result=True,
        result_backend=None,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    app.conf.tuneforge_settings = settings
    from .tasks import register_tasks

    register_tasks(app)
    return app


def settings_of(app: Any) -> WorkerSettings:
    settings: WorkerSettings = app.conf.tuneforge_settings
    return settings
