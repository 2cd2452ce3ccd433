"""Many workers on one study through the real HTTP server (uvicorn in a child process)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.specs import score, small_spec

LOOPS = 25


def worker_loop(
    url: str, sid: int, client_id: str, out: list[tuple[str, int, float]], errors: list[str]
) -> None:
    with httpx.Client(base_url=f"{url}/api/v1", timeout=60) as http:
        for _ in range(LOOPS):
            r = http.post(
                f"/studies/{sid}/trials/suggest", json={"count": 1, "client_id": client_id}
            )
            if r.status_code != 200 or not r.json()["trials"]:
                errors.append(f"{client_id} suggest: {r.status_code} {r.text[:200]}")
                return
            trial = r.json()["trials"][0]
            value = score(trial["params"])
            done = http.post(
                f"/studies/{sid}/trials/{trial['number']}/complete",
                json={"values": {"accuracy": value}},
            )
            if done.status_code != 200:
                errors.append(f"{client_id} complete: {done.status_code} {done.text[:200]}")
                return
            out.append((client_id, trial["number"], value))


def run_workers(server: LiveServer, threads: int) -> None:
    total = threads * LOOPS
    spec = small_spec("parallel", max_trials=total, algorithm="random")
    sid = httpx.post(f"{server.url}/api/v1/studies", json=spec, timeout=30).json()["id"]
    handed: list[tuple[str, int, float]] = []
    errors: list[str] = []
    workers = [
        threading.Thread(target=worker_loop, args=(server.url, sid, f"w{i}", handed, errors))
        for i in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)
    assert errors == []
    numbers = sorted(n for _, n, _ in handed)
    assert numbers == list(range(total)), "numbers must be exactly 0..N-1"
    assert max(Counter(n for _, n, _ in handed).values()) == 1, "a trial went to two clients"
    stored: dict[int, Any] = {}
    token = None
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as http:
        while True:
            params: dict[str, Any] = {"page_size": 1000}
            if token:
                params["page_token"] = token
            page = http.get(f"/studies/{sid}/trials", params=params).json()
            stored.update({t["number"]: t for t in page["trials"]})
            token = page["next_page_token"]
            if not token:
                break
        study = http.get(f"/studies/{sid}").json()
    assert len(stored) == total
    for client_id, number, value in handed:
        assert stored[number]["state"] == "completed"
        assert stored[number]["values"] == {"accuracy": value}
        assert stored[number]["client_id"] == client_id
    assert study["trial_counts"]["completed"] == total
    assert study["state"] == "completed"


@pytest.mark.slow
def test_32_threads_on_postgresql(pg_url: str) -> None:
    from tests.conftest import _truncate

    _truncate(pg_url)
    server = LiveServer(pg_url).start()
    try:
        run_workers(server, threads=32)
    finally:
        server.stop()


@pytest.mark.slow
def test_8_threads_on_sqlite(sqlite_url: str) -> None:
    server = LiveServer(sqlite_url).start()
    try:
        run_workers(server, threads=8)
    finally:
        server.stop()
