"""Workers survive a server that is killed and restarted, and Ctrl-C leaves no trial running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import tuneforge
from tests.conftest import LiveServer
from tests.sdk import objectives
from tests.sdk.conftest import clean_env, float_study

N_TRIALS = 24


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def kill_and_restart(server: LiveServer, study_id: int, seen: list[int]) -> None:
    """SIGKILL the server mid-run, then start it again on the same port and file."""
    with tuneforge.Client(server.url) as watcher:
        study = watcher.get_study(study_id)
        wait_for(lambda: study.refresh().trial_counts["completed"] >= 4)
        seen.append(study.trial_counts["completed"])
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    time.sleep(0.5)  # workers hit a closed port meanwhile
    server.start()


def test_server_killed_and_restarted_mid_optimize(sqlite_url: str) -> None:
    server = LiveServer(sqlite_url).start()
    try:
        with tuneforge.Client(server.url) as client:
            study = client.create_study(float_study("restart", max_trials=N_TRIALS))
            seen: list[int] = []
            chaos = threading.Thread(target=kill_and_restart, args=(server, study.id, seen))
            chaos.start()
            result = study.optimize(objectives.slow_quadratic, n_workers=4, progress=False)
            chaos.join()
            counts = study.refresh().trial_counts
    finally:
        server.stop()
    assert seen and seen[0] < N_TRIALS, "the server must die while trials are running"
    assert counts["completed"] == N_TRIALS and result.n_completed == N_TRIALS
    assert counts["active"] == counts["requested"] == counts["stopping"] == 0
    assert counts["failed"] == 0 and study.state == "completed"


CTRL_C_SCRIPT = """
import sys, time, tuneforge

def objective(trial):
    trial.report(0, loss=1.0)
    time.sleep(120)
    return 0.0

if __name__ == "__main__":
    client = tuneforge.Client(sys.argv[1])
    client.get_study(int(sys.argv[2])).optimize(objective, n_workers=2, progress=False)
"""


@pytest.mark.parametrize("target", ["parent", "process-group"])
def test_ctrl_c_fails_running_trials(
    sdk_live: LiveServer, name: str, tmp_path: Path, target: str
) -> None:
    """SIGINT to the parent only, or to the whole group as a terminal's Ctrl-C does."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(CTRL_C_SCRIPT))
    with tuneforge.Client(sdk_live.url) as client:
        study = client.create_study(float_study(name))
        proc = subprocess.Popen(
            [sys.executable, str(script), sdk_live.url, str(study.id)],
            env=clean_env(),
            start_new_session=True,
            stderr=subprocess.PIPE,
        )
        try:
            running = lambda: [t for t in study.trials("active") if t.data.measurements]  # noqa: E731
            wait_for(lambda: len(running()) == 2)
            if target == "parent":
                proc.send_signal(signal.SIGINT)
            else:
                os.killpg(proc.pid, signal.SIGINT)
            _, stderr = proc.communicate(timeout=45)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode != 0 and b"KeyboardInterrupt" in stderr
        trials = list(study.trials())
    assert len(trials) == 2
    assert all(t.state == "failed" and "interrupted" in (t.data.reason or "") for t in trials)
