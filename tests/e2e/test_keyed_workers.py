"""A team server with API keys, end to end: real PostgreSQL, Redis, the API server and a
`tuneforge worker` process holding a project-less ``worker`` key. The workers train a
project's managed study and store its held-out evaluation; the audit log names them."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import E2E_TIMEOUT, Worker, start_server, wait_for
from tests.e2e.test_celery import sklearn_spec
from tuneforge.api.db.engine import Database
from tuneforge.api.services import keys as key_service

pytestmark = pytest.mark.slow


def test_a_worker_with_its_own_key_runs_a_projects_study(
    cluster_db: str, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(cluster_db, pool_size=1)
    try:
        key_service.create_project(db, "team")
        _, admin = key_service.create_key(db, "team", "admin")
        worker_entry, worker_key = key_service.create_key(db, None, "worker")
    finally:
        db.dispose()
    server = start_server(cluster_db, broker_url)
    monkeypatch.setenv("TUNEFORGE_API_KEY", worker_key)  # Worker copies os.environ
    worker = Worker(server.url, broker_url, "keyed")
    http = httpx.Client(
        base_url=f"{server.url}/api/v1",
        headers={"Authorization": f"Bearer {admin}"},
        timeout=E2E_TIMEOUT,
    )
    try:
        assert httpx.get(f"{server.url}/api/v1/studies", timeout=E2E_TIMEOUT).status_code == 401
        sid = http.post("/studies", json=sklearn_spec("keyed", trials=6)).json()["id"]
        assert http.post(f"/studies/{sid}/run").status_code == 200

        def finished() -> dict[str, object] | None:
            study = http.get(f"/studies/{sid}").json()
            done = (study.get("evaluation") or {}).get("state") == "done"
            return study if study["state"] == "completed" and done else None

        study = wait_for(finished, 240, "the keyed study to finish")
        assert study["project"] == "team" and study["trial_counts"]["completed"] >= 1
        entries = http.get("/audit", params={"page_size": 1000}).json()["entries"]
        by_worker = {e["route"] for e in entries if e["key_id"] == worker_entry["id"]}
        assert "/api/v1/studies/{study_id}/trials/suggest" in by_worker
        assert "/api/v1/studies/{study_id}/evaluation" in by_worker
        assert all(e["status"] < 400 for e in entries if e["key_id"] == worker_entry["id"])
    finally:
        http.close()
        worker.stop()
        server.stop()
