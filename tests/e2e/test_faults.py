"""The fault suite: real servers, workers, PostgreSQL and Redis, killed under load.

After each fault: no completion the server acknowledged is lost, no trial number is
used twice, nothing is active past its lease, and every client finished its loop.
Each test prints one ``FAULT-REPORT`` line (run with ``-s``) with what it observed;
docs/reliability.md records those numbers. A missing binary fails in CI, skips elsewhere.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.e2e.conftest import E2E_TIMEOUT, PrivateRedis, Worker, all_trials, wait_for
from tests.e2e.faults import (
    SPEC,
    ClientLog,
    PrivatePostgres,
    create_study,
    epoch,
    longest_idle,
    merged_acknowledged,
    outcome,
    run_clients,
)
from tuneforge.api.db.migrate import upgrade

pytestmark = pytest.mark.slow
CLIENTS, TRIALS = 4, 10


def server(db_url: str, broker: str, *extra: str, **env: str) -> LiveServer:
    settings = {
        "TUNEFORGE_BROKER_URL": broker,
        "TUNEFORGE_RECONCILE_INTERVAL_SECONDS": "0.5",
        **env,
    }
    return LiveServer(db_url, *extra, env=settings).start(timeout=60)


def check(url: str, sid: int, logs: Sequence[ClientLog], what: str, **observed: Any) -> None:
    acknowledged = merged_acknowledged(logs)
    result = outcome(url, sid, acknowledged)
    retries = sum(log.retries for log in logs)
    print(
        f"FAULT-REPORT {what}: clients finished {sum(log.finished for log in logs)}/{len(logs)}, "
        f"completions acknowledged {len(acknowledged)}, stored completed {result.completed}, "
        f"lost {len(result.lost)}, duplicate numbers {len(result.duplicates)}, "
        f"active past lease {len(result.overdue)}, client retries {retries}, "
        + ", ".join(f"{k} {v}" for k, v in observed.items())
    )
    assert [log.unexpected for log in logs if log.unexpected] == []
    assert all(log.finished for log in logs), "a client did not finish its loop"
    assert len(acknowledged) == CLIENTS * TRIALS
    assert result.lost == [] and result.duplicates == [] and result.overdue == []
    numbers = sorted(t["number"] for t in result.trials)
    assert numbers == list(range(len(numbers))), "trial numbers must be 0..n-1 without gaps"


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres().start()
    yield pg
    pg.stop()


def test_server_sigkill_under_load_with_two_replicas(cluster_db: str, broker_url: str) -> None:
    """Clients spread over replica A (one process) and B (two uvicorn workers); A is
    killed with SIGKILL a third of the way through, and its clients move to B."""
    with ThreadPoolExecutor(2) as starting:  # both start at once: start-up is slow here
        a, b = starting.map(
            lambda extra: server(cluster_db, broker_url, *extra), [(), ("--workers", "2")]
        )
    try:
        sid = create_study(a.url, {**SPEC, "retries": {"lease_seconds": 30}})

        def kill_a() -> None:
            assert a.proc is not None
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait()

        started = time.monotonic()
        logs = run_clients([a.url, b.url], sid, CLIENTS, TRIALS, kill_a)
        took = round(time.monotonic() - started, 1)
        check(b.url, sid, logs, "server SIGKILL", wall_s=took)
    finally:
        a.stop()
        b.stop()


def test_postgres_crash_and_restart_under_load(private_pg: PrivatePostgres) -> None:
    """The database stops as in a crash (pg_ctl -m immediate) while clients run, then
    starts again (crash recovery); the server's requests meanwhile fail with 503."""
    url = private_pg.create_database()
    upgrade(url)
    app = server(url, "redis://127.0.0.1:1/0")
    try:
        sid = create_study(app.url, {**SPEC, "retries": {"lease_seconds": 60}})
        downtime: dict[str, float] = {}

        def crash() -> None:
            started = time.monotonic()
            private_pg.crash()
            time.sleep(2.0)
            private_pg.start()
            downtime["db_down_s"] = round(time.monotonic() - started, 1)

        started = time.monotonic()
        logs = run_clients([app.url], sid, CLIENTS, TRIALS, crash)
        took = round(time.monotonic() - started, 1)
        check(app.url, sid, logs, "PostgreSQL crash", wall_s=took, **downtime)
    finally:
        app.stop()


def managed_spec(
    name: str, trials: int, lease: int = 30, active: int = 2, pause: float = 0.4
) -> dict[str, Any]:
    return {
        **SPEC,
        "name": name,
        "max_trials": trials,
        "max_active_trials": active,
        "retries": {"max_retries": 2, "lease_seconds": lease},
        "objective": {
            "kind": "python",
            "callable": "tests.e2e.objectives:slow_quadratic",
            "options": {"pause": pause},
        },
    }


def run_managed(url: str, spec: dict[str, Any]) -> int:
    sid = create_study(url, spec)
    reply = httpx.post(f"{url}/api/v1/studies/{sid}/run", timeout=E2E_TIMEOUT)
    assert reply.status_code == 200, reply.text
    return sid


def finished(url: str, sid: int) -> dict[str, Any] | None:
    study = httpx.get(f"{url}/api/v1/studies/{sid}", timeout=E2E_TIMEOUT).json()
    return dict(study) if study["state"] == "completed" else None


def check_managed(url: str, sid: int, trials: int, what: str, **observed: Any) -> None:
    result = outcome(url, sid, {})
    states = [t["state"] for t in result.trials]
    print(
        f"FAULT-REPORT {what}: completed {result.completed}/{trials}, trials {len(states)}, "
        f"failed {states.count('failed')}, duplicate numbers {len(result.duplicates)}, "
        f"active past lease {len(result.overdue)}, "
        + ", ".join(f"{k} {v}" for k, v in observed.items())
    )
    assert result.completed == trials, "every budgeted trial completes"
    assert result.duplicates == [] and result.overdue == []
    assert not [s for s in states if s in ("active", "stopping", "requested")]
    numbers = sorted(t["number"] for t in result.trials)
    assert numbers == list(range(len(numbers)))


def test_redis_restarted_empty_loses_queued_tasks_for_seconds_only(cluster_db: str) -> None:
    """Redis is started again empty twice: once while the study's first tasks wait in it
    with no worker up yet (nothing but the server can bring them back), once mid-study
    with two workers busy and a third task queued. The server must resend lost tasks
    after the claim timeout (10 s), not the 120 s TTL: no worker idles over 15 s."""
    redis = PrivateRedis().start()
    app = server(cluster_db, redis.url, TUNEFORGE_DISPATCH_TTL_SECONDS="120")
    workers: list[Worker] = []
    try:
        sid = run_managed(app.url, managed_spec("faults-redis", 12, active=3))
        wait_for(lambda: queued(redis.url) == 3, 30, "the first three tasks in Redis")
        first_restart = restart(redis)
        workers = [Worker(app.url, redis.url, f"f{i}") for i in range(2)]
        wait_for(lambda: completed_count(app.url, sid) >= 4, 120, "four completed trials")
        second_restart = restart(redis)
        wait_for(lambda: finished(app.url, sid), 120, "the study to finish")
        trials = all_trials(app.url, sid)
        first_start = min(epoch(t["started_at"]) for t in trials if t["started_at"])
        waited = first_start - first_restart
        idle = longest_idle(trials, workers=2, after=second_restart)
        check_managed(
            app.url,
            sid,
            12,
            "Redis restart",
            first_trial_after_restart_s=round(waited, 1),
            longest_worker_idle_after_mid_study_restart_s=round(idle, 1),
        )
        assert waited <= 15.0, f"the lost first tasks took {waited:.1f} s to come back"
        assert idle <= 15.0, f"a worker sat idle {idle:.1f} s after the Redis restart"
    finally:
        for w in workers:
            w.stop()
        app.stop()
        redis.kill()


def queued(url: str) -> int:
    import redis

    return int(redis.Redis.from_url(url).llen("celery"))


def restart(redis: PrivateRedis) -> float:
    """Kill Redis and start it again, empty; returns when it went down (epoch seconds)."""
    went_down = time.time()
    redis.kill()
    redis.start()
    return went_down


def completed_count(url: str, sid: int) -> int:
    study = httpx.get(f"{url}/api/v1/studies/{sid}", timeout=E2E_TIMEOUT).json()
    return int(study["trial_counts"]["completed"])


def test_worker_sigkill_mid_trial(cluster_db: str, broker_url: str) -> None:
    """A worker is killed (its whole process group) while it trains: its trial's lease
    runs out, the trial is failed and retried with the same parameters elsewhere."""
    app = server(cluster_db, broker_url)
    workers = [Worker(app.url, broker_url, f"k{i}") for i in range(2)]
    try:
        # Trials of 4 s (4 steps of 1 s), and the kill once both workers train: then the
        # victim is still training when it lands (with 1.6 s trials and one active trial,
        # a loaded machine let it be between trials, and nothing was lost).
        sid = run_managed(app.url, managed_spec("faults-worker", 8, lease=3, pause=1.0))
        wait_for(lambda: completed_count(app.url, sid) >= 2, 120, "two completed trials")
        wait_for(
            lambda: sum(t["state"] == "active" for t in all_trials(app.url, sid)) >= 2,
            60,
            "both workers running a trial",
        )
        killed = time.monotonic()
        workers[0].kill()
        wait_for(lambda: finished(app.url, sid), 120, "the study to finish")
        took = round(time.monotonic() - killed, 1)
        trials = all_trials(app.url, sid)
        retried = [t for t in trials if t["retry_of"] is not None]
        check_managed(
            app.url, sid, 8, "worker SIGKILL", retried=len(retried), finish_after_kill_s=took
        )
        failed = [t for t in trials if t["state"] == "failed"]
        assert failed and all("lease expired" in t["reason"] for t in failed)
        assert retried, "the killed worker's trial was not retried"
    finally:
        for w in workers:
            w.stop()
        app.stop()
