"""What a study spec may name, end to end: real PostgreSQL, Redis, the API server process
and `tuneforge worker` processes (Celery).

A spec naming a callable the operator did not allow, a file outside the data roots or a
URL is refused at creation with a 422 naming the field, and no worker ever runs it (no
marker file, no HTTP request to the URL, no trial). A worker also refuses what its own
policy does not allow, even when a more permissive server accepted the study.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, free_port
from tests.e2e.conftest import E2E_TIMEOUT, Worker, all_trials, wait_for

pytestmark = pytest.mark.slow

ALLOWED = "tests.e2e.objectives"
FORBIDDEN = "tests.e2e.forbidden:touch_marker"


class Hits(http.server.BaseHTTPRequestHandler):
    """Counts every request it receives (the URL a hostile spec names)."""

    count = 0

    def do_GET(self) -> None:
        Hits.count += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"a,label\n1,0\n2,1\n3,0\n")

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def url_target() -> Iterator[str]:
    Hits.count = 0
    httpd = http.server.HTTPServer(("127.0.0.1", free_port()), Hits)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/data.csv"
    httpd.shutdown()


class Team:
    """An API server and two workers, each with its own policy."""

    def __init__(
        self, db_url: str, broker: str, server_env: dict[str, str], worker_env: dict[str, str]
    ) -> None:
        base = {
            "TUNEFORGE_BROKER_URL": broker,
            "TUNEFORGE_RECONCILE_INTERVAL_SECONDS": "0.5",
            "TUNEFORGE_DISPATCH_TTL_SECONDS": "6",
        }
        self.server = LiveServer(db_url, env={**base, **server_env}).start()
        self.url = self.server.url
        self.workers = [Worker(self.url, broker, f"p{i}", env=worker_env) for i in range(2)]
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", timeout=E2E_TIMEOUT)

    def stop(self) -> None:
        self.http.close()
        for w in self.workers:
            w.stop()
        self.server.stop()


def policy_env(modules: str, root: Path) -> dict[str, str]:
    return {
        "TUNEFORGE_PYTHON_OBJECTIVE_MODULES": modules,
        "TUNEFORGE_DATA_ROOTS": str(root),
        "TUNEFORGE_DATA_URL_SCHEMES": "",
    }


def python_spec(name: str, target: str, trials: int = 4, **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "metrics": [{"name": "loss", "goal": "minimize"}],
        "max_trials": trials,
        "max_active_trials": 2,
        "objective": {"kind": "python", "callable": target, "options": options},
    }


def csv_spec(name: str, path: str) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": [{"name": "C", "type": "float", "low": 0.01, "high": 10, "scale": "log"}],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "max_trials": 4,
        "objective": {
            "kind": "sklearn",
            "estimator": "sklearn.svm.SVC",
            "dataset": {"source": "csv", "path": path, "target": "label"},
            "cv": {"type": "kfold", "n_splits": 2},
        },
    }


def finished(team: Team, sid: int) -> dict[str, Any] | None:
    study = dict(team.http.get(f"/studies/{sid}").json())
    return study if study["state"] == "completed" else None


def test_refused_at_creation_and_never_run(
    cluster_db: str, broker_url: str, tmp_path: Path, url_target: str
) -> None:
    root, outside = tmp_path / "data", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "d.csv").write_text("a,label\n1,0\n2,1\n3,0\n4,1\n")
    marker = tmp_path / "marker"
    env = policy_env(ALLOWED, root)
    team = Team(cluster_db, broker_url, env, env)
    try:
        refused = {
            "objective.callable": python_spec("callable", FORBIDDEN, marker=str(marker)),
            "objective.dataset.path": csv_spec("outside", str(outside / "d.csv")),
        }
        for field, spec in refused.items():
            r = team.http.post("/studies", json=spec)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["details"]["field"] == field, r.text
        r = team.http.post("/studies", json=csv_spec("url", url_target))
        assert r.status_code == 422 and "URL scheme 'http'" in r.text, r.text
        assert r.json()["error"]["details"]["field"] == "objective.dataset.path"
        assert team.http.get("/studies").json()["studies"] == []

        # the control: the same workers do run what the operator allows
        sid = team.http.post(
            "/studies", json=python_spec("allowed", f"{ALLOWED}:slow_quadratic", pause=0.05)
        ).json()["id"]
        assert team.http.post(f"/studies/{sid}/run").status_code == 200
        wait_for(lambda: finished(team, sid), 120, "the allowed study to finish")
        assert {t["state"] for t in all_trials(team.url, sid)} <= {"completed", "pruned"}
        assert [s["name"] for s in team.http.get("/studies").json()["studies"]] == ["allowed"]
    finally:
        team.stop()
    assert not marker.exists()
    assert Hits.count == 0


def test_a_worker_refuses_what_its_own_policy_does_not_allow(
    cluster_db: str, broker_url: str, tmp_path: Path
) -> None:
    """A server configured more loosely than its workers: the workers still refuse, and
    record why without running anything."""
    marker = tmp_path / "marker"
    team = Team(
        cluster_db,
        broker_url,
        server_env=policy_env("tests.e2e", tmp_path),
        worker_env=policy_env(ALLOWED, tmp_path),
    )
    try:
        r = team.http.post(
            "/studies", json=python_spec("loose", FORBIDDEN, trials=6, marker=str(marker))
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert team.http.post(f"/studies/{sid}/run").status_code == 200
        study = wait_for(lambda: finished(team, sid), 120, "the study to stop")
        trials = [t for t in all_trials(team.url, sid) if t["state"] not in ("active", "requested")]
        assert trials and {t["state"] for t in trials} == {"infeasible"}
        assert all("objective.callable" in (t["reason"] or "") for t in trials), trials
        assert "same_error" in study["completion_reason"]
    finally:
        team.stop()
    assert not marker.exists()


def local_cli(*args: str, cwd: Path) -> Any:
    """``tuneforge`` with no ``TUNEFORGE_*`` variable: the embedded defaults only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    command = [sys.executable, "-m", "tuneforge.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_local_run_trusts_its_user_within_the_working_directory(tmp_path: Path) -> None:
    """`tuneforge run` (embedded server, local processes): the user's own python module and
    a csv file relative to the working directory run; a file outside it is refused."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_objective.py").write_text(
        "def score(params, reporter):\n    return (params['x'] - 0.25) ** 2\n"
    )
    rows = "".join(f"{i % 5}.5,{(i * 7) % 3}.25,{i % 2}\n" for i in range(40))
    (project / "data.csv").write_text("a,b,label\n" + rows)
    (tmp_path / "outside.csv").write_text("a,b,label\n" + rows)
    spec = python_spec("local-python", "my_objective:score", trials=3)
    (project / "python.json").write_text(json.dumps(spec))
    result = local_cli("run", "python.json", "--no-progress", "--workers", "1", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "3 completed" in result.stdout, result.stdout

    (project / "csv.json").write_text(json.dumps(csv_spec("local-csv", "data.csv")))
    result = local_cli("run", "csv.json", "--no-progress", "--workers", "1", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "4 completed" in result.stdout, result.stdout

    (project / "out.json").write_text(json.dumps(csv_spec("local-out", "../outside.csv")))
    result = local_cli("run", "out.json", "--no-progress", cwd=project)
    assert result.returncode != 0 and "objective.dataset.path" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
