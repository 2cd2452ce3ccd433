"""Observability through the real app: ``/metrics`` parsed by prometheus-client's own
text parser, with the database gauges and the suggest histogram moving as trials do;
JSON log lines carrying request ids from a real server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_nested import spec as managed_spec
from tests.api.test_scheduler import RecordingQueue, reconcile
from tests.conftest import LiveServer, free_port
from tests.specs import small_spec
from tuneforge.api.app import create_app
from tuneforge.api.logs import configure_logging
from tuneforge.api.settings import Settings

API = "/api/v1"


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, keyed by name and sorted labels."""
    r = client.get("/metrics")
    assert r.status_code == 200
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def trials(samples: dict[Any, float], state: str) -> float:
    return samples[("tuneforge_trials", (("state", state),))]


def suggest_count(samples: dict[Any, float], algorithm: str) -> float:
    return samples.get(("tuneforge_suggest_seconds_count", (("algorithm", algorithm),)), 0.0)


def test_trial_gauges_and_suggest_latency_move_with_the_trials(client: TestClient) -> None:
    before = scrape(client)
    assert trials(before, "active") == 0 and trials(before, "completed") == 0
    assert before[("tuneforge_active_leases", ())] == 0
    assert before[("tuneforge_metrics_database_up", ())] == 1
    assert suggest_count(before, "tpe") == 0
    sid = client.post(f"{API}/studies", json=small_spec(algorithm="tpe")).json()["id"]
    first, second = client.post(
        f"{API}/studies/{sid}/trials/suggest", json={"count": 2, "client_id": "w"}
    ).json()["trials"]
    running = scrape(client)
    assert trials(running, "active") == 2
    assert running[("tuneforge_active_leases", ())] == 2
    assert suggest_count(running, "tpe") == 1
    assert running[("tuneforge_suggest_seconds_sum", (("algorithm", "tpe"),))] > 0
    client.post(
        f"{API}/studies/{sid}/trials/{first['number']}/complete", json={"values": {"accuracy": 1}}
    )
    client.post(f"{API}/studies/{sid}/trials/{second['number']}/fail", json={"retry": False})
    client.post(f"{API}/studies/{sid}/trials", json={"params": first["params"]})
    other = client.post(f"{API}/studies", json=small_spec("other", algorithm="random")).json()
    client.post(f"{API}/studies/{other['id']}/trials/suggest", json={})
    after = scrape(client)
    assert trials(after, "completed") == 1 and trials(after, "failed") == 1
    assert trials(after, "requested") == 1 and trials(after, "active") == 1
    assert after[("tuneforge_active_leases", ())] == 1
    assert suggest_count(after, "tpe") == 1 and suggest_count(after, "random") == 1
    route = (("method", "POST"), ("route", f"{API}/studies/{{study_id}}/trials/suggest"))
    assert after[("tuneforge_http_request_seconds_count", route)] == 2
    # PostgreSQL: suggest's claims, the complete, the fail and the POST each took the
    # study's row lock once (tests/api/test_study_lock.py times them); SQLite's write
    # transactions hold the whole database, and no study row lock is timed
    locks = after[("tuneforge_study_lock_hold_seconds_count", ())]
    assert locks == (5 if client.app.state.db.backend == "postgresql" else 0)  # type: ignore[attr-defined]
    # the tpe suggest was one batch of the algorithm (random ran inside its bookkeeping)
    for phase in ("snapshot", "fit", "claim"):
        assert after[("tuneforge_suggest_phase_seconds_count", (("phase", phase),))] == 1
    assert after[("tuneforge_suggest_phase_seconds_sum", (("phase", "claim"),))] > 0


def test_dispatch_queue_depth_counts_unclaimed_tasks(client: TestClient) -> None:
    assert scrape(client)[("tuneforge_dispatch_queue_depth", (("kind", "trial"),))] == 0
    body = managed_spec(name="managed", max_active_trials=3)
    sid = client.post(f"{API}/studies", json=body).json()["id"]
    assert client.post(f"{API}/studies/{sid}/run").status_code == 200
    queue = RecordingQueue()
    reconcile(client, queue, Settings(dispatch_ttl_seconds=60))
    assert len(queue.sent) == 3
    samples = scrape(client)
    assert samples[("tuneforge_dispatch_queue_depth", (("kind", "trial"),))] == 3
    assert samples[("tuneforge_dispatch_queue_depth", (("kind", "evaluate"),))] == 0
    task = queue.sent[0][2]
    client.post(f"{API}/studies/{sid}/trials/suggest", json={"client_id": f"task:{task}"})
    samples = scrape(client)
    assert samples[("tuneforge_dispatch_queue_depth", (("kind", "trial"),))] == 2
    assert samples[("tuneforge_active_leases", ())] == 1


@pytest.fixture
def json_log_server(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    """A real server logging JSON at info level, its stdout and stderr going to a file."""
    # the later --log-level wins over LiveServer's own "warning": access lines are info
    server = LiveServer(sqlite_url, "--log-level", "info", env={"TUNEFORGE_LOG_FORMAT": "json"})
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        saved = os.dup(1), os.dup(2)
        os.dup2(log.fileno(), 1)  # the child inherits these descriptors
        os.dup2(log.fileno(), 2)
        try:
            server.start()
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    yield server, log_path
    server.stop()


def test_json_log_lines_carry_the_request_id(json_log_server: tuple[LiveServer, Path]) -> None:
    server, log_path = json_log_server
    r = httpx.get(f"{server.url}{API}/studies", headers={"X-Request-ID": "trace-me-7"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-me-7"
    generated = httpx.get(f"{server.url}/healthz").headers["x-request-id"]
    server.stop()
    output = log_path.read_text().splitlines()
    entries = [json.loads(line) for line in output if line.startswith("{")]
    mine = [e for e in entries if e["request_id"] == "trace-me-7"]
    assert mine and mine[0]["logger"] == "uvicorn.access" and mine[0]["level"] == "info"
    assert "/api/v1/studies" in mine[0]["message"]
    assert any(e["request_id"] == generated for e in entries)
    assert all({"time", "level", "logger", "message", "request_id"} <= set(e) for e in entries)


def test_server_log_records_carry_the_request_id_and_the_hidden_cause(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    configure_logging("json", "info")
    try:
        down = TestClient(create_app(Settings(db_url=f"postgresql://u@127.0.0.1:{port}/db")))
        r = down.get("/readyz", headers={"X-Request-ID": "ready-1"})
        assert r.status_code == 503 and str(port) not in r.text
        err = capsys.readouterr().err
    finally:
        configure_logging("text", "warning")
    entries = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    (entry,) = [e for e in entries if e["logger"] == "tuneforge.api"]
    assert entry["request_id"] == "ready-1" and entry["level"] == "warning"
    assert str(port) in entry["exception"], "the cause belongs in the server log"


def test_metrics_answer_when_the_database_counts_fail(tmp_path: Path) -> None:
    never_migrated = TestClient(create_app(Settings(db_url=f"sqlite:///{tmp_path / 'x.db'}")))
    samples = scrape(never_migrated)
    assert samples[("tuneforge_metrics_database_up", ())] == 0
    assert not any(name == "tuneforge_trials" for name, _ in samples)
