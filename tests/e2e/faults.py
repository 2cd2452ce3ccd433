"""Pieces of the fault suite (tests/e2e/test_faults.py): a private PostgreSQL cluster the
test may crash, client loops that survive the faults, and the checks run afterwards."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port, service_missing
from tests.e2e.conftest import E2E_TIMEOUT, all_trials


def pg_bindir() -> Path:
    """The newest PostgreSQL server binaries installed (fails in CI when there are none)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    path = shutil.which("pg_ctl")
    if found:
        return Path(found[-1]).parent
    if path is not None:
        return Path(path).parent
    service_missing("PostgreSQL server binaries (initdb, pg_ctl)", FileNotFoundError("pg_ctl"))
    raise AssertionError("unreachable")


def _version(path: str) -> float:
    try:
        return float(Path(path).parts[-3])
    except ValueError:
        return 0.0


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary directory, a free
    port): the test may crash and restart it without touching anyone else's database.
    As root, the binaries run as the ``postgres`` user (initdb refuses root)."""

    def __init__(self) -> None:
        self.bindir = pg_bindir()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tuneforge-pg-"))
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/tuneforge"
        self._user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._user = ["runuser", "-u", "postgres", "--"]

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self._user, str(self.bindir / tool), *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> PrivatePostgres:
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.dir / "log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")
        return self

    def create_database(self) -> str:
        self._run(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "tuneforge"
        )
        return self.url

    def crash(self) -> None:
        """Stop at once, as a crash would (``immediate``: no checkpoint, recovery on start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


SPEC = {
    "name": "faults",
    "parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}],
    "metrics": [{"name": "loss", "goal": "minimize"}],
    "algorithm": "random",
    "retries": {"max_retries": 0, "lease_seconds": 5},
}

#: Replies after which a client tries again: the server or its database is away.
RETRY_STATUS = {502, 503, 504}


@dataclass
class ClientLog:
    """What one client loop saw: the completions the server acknowledged, and its errors."""

    name: str
    acknowledged: dict[int, float] = field(default_factory=dict)
    retries: int = 0
    unexpected: list[str] = field(default_factory=list)
    finished: bool = False


class ClientLoop(threading.Thread):
    """suggest → one measurement → complete, ``trials`` times, through any of ``urls``:
    a refused connection or a 503 moves to the next server and tries the same call again
    (suggest with the same ``client_id`` returns the client's own unfinished trial)."""

    def __init__(self, urls: Sequence[str], sid: int, index: int, trials: int) -> None:
        name = f"client-{index}"
        super().__init__(name=name, daemon=True)
        self.urls, self.sid, self.trials = list(urls), sid, trials
        self.log = ClientLog(name)
        self._turn = index  # clients start spread over the servers
        self.deadline = time.monotonic() + 300

    def call(self, path: str, body: dict[str, Any]) -> httpx.Response:
        while time.monotonic() < self.deadline:
            url = self.urls[self._turn % len(self.urls)]
            try:
                reply = httpx.post(f"{url}/api/v1/studies/{self.sid}{path}", json=body, timeout=30)
                if reply.status_code not in RETRY_STATUS:
                    return reply
            except httpx.TransportError:
                pass
            self.log.retries += 1
            self._turn += 1
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: {path} never answered")

    def run(self) -> None:
        try:
            for _ in range(self.trials):
                self.one_trial()
            self.log.finished = True
        except Exception as exc:
            self.log.unexpected.append(f"{type(exc).__name__}: {exc}")

    def one_trial(self) -> None:
        reply = self.call("/trials/suggest", {"count": 1, "client_id": self.name})
        (trial,) = reply.json()["trials"]
        number, value = trial["number"], (trial["params"]["x"] - 0.3) ** 2
        self.call(f"/trials/{number}/measurements", {"step": 1, "values": {"loss": value}})
        done = self.call(f"/trials/{number}/complete", {"values": {"loss": value}})
        if done.status_code == 409:  # a reply lost in a crash: the trial must be ours, done
            trial = httpx.get(
                f"{self.urls[self._turn % len(self.urls)]}/api/v1/studies/{self.sid}"
                f"/trials/{number}",
                timeout=30,
            ).json()
            if trial["state"] != "completed" or trial["values"] != {"loss": value}:
                self.log.unexpected.append(f"complete {number}: 409 and {trial['state']}")
                return
        elif done.status_code != 200:
            self.log.unexpected.append(f"complete {number}: {done.status_code} {done.text}")
            return
        self.log.acknowledged[number] = value


def run_clients(
    urls: Sequence[str], sid: int, clients: int, trials: int, fault: Callable[[], None]
) -> list[ClientLog]:
    """Start the loops, apply ``fault`` once a third of the trials are done, wait for
    every loop."""
    loops = [ClientLoop(urls, sid, i, trials) for i in range(clients)]
    for loop in loops:
        loop.start()
    while sum(len(loop.log.acknowledged) for loop in loops) < clients * trials // 3 and any(
        loop.is_alive() for loop in loops
    ):
        time.sleep(0.05)
    fault()
    for loop in loops:
        loop.join(timeout=300)
    return [loop.log for loop in loops]


@dataclass
class Outcome:
    """What the database holds after a fault, checked against what clients were told."""

    trials: list[dict[str, Any]]
    lost: list[int]
    duplicates: list[int]
    overdue: list[int]

    @property
    def completed(self) -> int:
        return sum(1 for t in self.trials if t["state"] == "completed")


def outcome(url: str, sid: int, acknowledged: dict[int, float]) -> Outcome:
    """Lost: acknowledged completions not stored as such; duplicates: numbers seen twice;
    overdue: trials still active (or stopping) past their lease."""
    trials = all_trials(url, sid)
    by_number: dict[int, dict[str, Any]] = {}
    duplicates = []
    for t in trials:
        if t["number"] in by_number:
            duplicates.append(t["number"])
        by_number[t["number"]] = t
    lost = [
        n
        for n, value in acknowledged.items()
        if n not in by_number
        or by_number[n]["state"] != "completed"
        or (by_number[n]["values"] or {}).get("loss") != value
    ]
    now = datetime.now(UTC)
    overdue = [
        t["number"]
        for t in trials
        if t["state"] in ("active", "stopping")
        and t["lease_expires_at"] is not None
        and datetime.fromisoformat(t["lease_expires_at"]).replace(tzinfo=UTC) < now
    ]
    return Outcome(trials, lost, duplicates, overdue)


def merged_acknowledged(logs: Sequence[ClientLog]) -> dict[int, float]:
    merged: dict[int, float] = {}
    for log in logs:
        for number, value in log.acknowledged.items():
            assert number not in merged, f"trial {number} was handed to two clients"
            merged[number] = value
    return merged


def create_study(url: str, spec: dict[str, Any]) -> int:
    reply = httpx.post(f"{url}/api/v1/studies", json=spec, timeout=E2E_TIMEOUT)
    assert reply.status_code == 201, reply.text
    return int(reply.json()["id"])


def longest_idle(trials: Sequence[dict[str, Any]], workers: int, after: float) -> float:
    """The longest stretch after ``after`` (epoch seconds), before the last trial started,
    during which fewer than ``workers`` trials were running: some worker sat idle."""
    spans = sorted(
        (epoch(t["started_at"]), epoch(t["completed_at"] or t["updated_at"]))
        for t in trials
        if t["started_at"] is not None
    )
    if not spans:
        return 0.0
    end = max(s for s, _ in spans)
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running, idle_since, longest = 0, None, 0.0
    for moment, change in events:
        if moment > end:
            break
        running += change
        if running < workers and idle_since is None:
            idle_since = moment
        elif running >= workers and idle_since is not None:
            if moment > after:
                longest = max(longest, moment - max(idle_since, after))
            idle_since = None
    return longest


def epoch(stamp: str) -> float:
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
