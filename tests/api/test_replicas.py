"""Two server instances on one database behave like one (nothing lives only in memory)."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from tests.conftest import make_client

API = "/api/v1"


def test_two_replicas_share_history_and_numbers(db_url: str) -> None:
    spec = {
        "name": "tiny",
        "parameters": [
            {"name": "a", "type": "categorical", "values": ["x", "y", "z"]},
            {"name": "b", "type": "int", "low": 0, "high": 1},
        ],
        "metrics": [{"name": "m", "goal": "minimize"}],
        "algorithm": "random",
        "max_trials": 6,
    }
    with (
        make_client(db_url, reconcile_interval_seconds=0) as one,
        make_client(db_url, reconcile_interval_seconds=0) as two,
    ):
        sid = one.post(f"{API}/studies", json=spec).json()["id"]
        seen = []
        for i in range(6):
            asker, finisher = (one, two) if i % 2 == 0 else (two, one)
            (trial,) = asker.post(f"{API}/studies/{sid}/trials/suggest", json={}).json()["trials"]
            r = finisher.post(
                f"{API}/studies/{sid}/trials/{trial['number']}/complete", json={"values": {"m": i}}
            )
            assert r.status_code == 200
            seen.append((trial["number"], tuple(sorted(trial["params"].items()))))
        assert [n for n, _ in seen] == list(range(6))
        assert len({p for _, p in seen}) == 6, "a replica proposed a point the other completed"
        assert one.get(f"{API}/studies/{sid}").json()["state"] == "completed"
        assert two.get(f"{API}/studies/{sid}/best").json()["trials"][0]["values"] == {"m": 0}


def test_replicas_under_concurrent_load_never_fail_a_call(db_url: str) -> None:
    """Twenty-four clients, half on each of two apps on one database (two server processes),
    loop suggest -> measurement -> complete on one study: suggests share their
    transaction, completions share theirs, and every caller of both processes takes the
    study's and its trials' row locks. No call may fail (a lock-order deadlock would
    surface as a 503 after PostgreSQL's deadlock timeout) and every trial must end
    completed."""
    loops, clients = 30, 24
    spec = {
        "name": "busy",
        "parameters": [{"name": "x", "type": "float", "low": 0.0, "high": 1.0}],
        "metrics": [{"name": "m", "goal": "minimize"}],
        "algorithm": "random",
    }
    with (
        make_client(db_url, reconcile_interval_seconds=0) as one,
        make_client(db_url, reconcile_interval_seconds=0) as two,
    ):
        sid = one.post(f"{API}/studies", json=spec).json()["id"]
        failures: list[str] = []

        def loop(client: TestClient, cid: str) -> None:
            base = f"{API}/studies/{sid}/trials"
            for i in range(loops):
                r = client.post(f"{base}/suggest", json={"client_id": cid})
                if r.status_code != 200:
                    failures.append(f"suggest {r.status_code} {r.text}")
                    return
                number = r.json()["trials"][0]["number"]
                step = {"step": 0, "values": {"m": 0.5}}
                r = client.post(f"{base}/{number}/measurements", json=step)
                if r.status_code != 200:
                    failures.append(f"measurement {r.status_code} {r.text}")
                r = client.post(f"{base}/{number}/complete", json={"values": {"m": i / loops}})
                if r.status_code != 200:
                    failures.append(f"complete {r.status_code} {r.text}")

        threads = [
            threading.Thread(target=loop, args=(one if i % 2 else two, f"c{i}"))
            for i in range(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert failures == []
        counts = one.get(f"{API}/studies/{sid}").json()["trial_counts"]
        assert counts["completed"] == loops * clients, counts
