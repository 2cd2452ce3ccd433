"""``tuneforge run`` resumes and says so, through the real console script: a larger
``max_trials`` continues the study with the bar over the whole budget, a finished study
says it is finished, Ctrl-C prints the exact command that resumes, and
``--no-progress`` keeps stderr quiet."""

from __future__ import annotations

import os
import re
import shlex
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.cli.test_cli_errors import CLI, cli, error_line, managed_spec

IRIS = {"source": "sklearn", "name": "iris"}


def write_spec(tmp_path: Path, **extra: Any) -> None:
    spec = managed_spec("resume", IRIS, **extra)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_a_larger_budget_resumes_and_the_bar_counts_the_whole_budget(tmp_path: Path) -> None:
    write_spec(tmp_path, max_trials=2)
    assert re.search(r"\b2/2\b", ok(cli("run", "study.yaml", "-w", "1", cwd=tmp_path)))

    write_spec(tmp_path, max_trials=4)
    err = ok(cli("run", "study.yaml", "-w", "1", cwd=tmp_path))
    assert "updating study 'resume' (id 1): max_trials 2 -> 4" in err
    assert "resuming study 'resume': 2 of 4 trials done" in err
    assert re.search(r"\b4/4\b", err) and "0/2" not in err

    again = cli("run", "study.yaml", "-w", "1", cwd=tmp_path)
    err = ok(again)
    assert re.search(
        r"study 'resume' is finished \(max_trials\): 4 of 4 trials done; "
        r"best accuracy 0\.\d+ \(trial \d+\)",
        err,
    )
    assert "study 'resume' (id 1): 4 completed" in again.stdout

    quiet = cli("run", "study.yaml", "-w", "1", "--no-progress", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "study 'resume' (id 1): 4 completed" in quiet.stdout


def finished_trials(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute("SELECT count(*) FROM trials WHERE state = 'completed'").fetchone()
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    return int(row[0])


def test_ctrl_c_prints_the_command_that_resumes(tmp_path: Path) -> None:
    write_spec(tmp_path, max_trials=30)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    proc = subprocess.Popen(
        [*CLI, "run", "study.yaml", "-w", "1", "--db", "runs.db"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a terminal's Ctrl-C reaches the whole process group
    )
    try:
        deadline = time.monotonic() + 120
        while finished_trials(tmp_path / "runs.db") < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    line = error_line(result, exit_code=130)
    match = re.fullmatch(
        r"Error: interrupted study 'resume': (\d+) of 30 trials done, running trials marked "
        r"failed \(interrupted\); resume with: (.+)",
        line,
    )
    assert match is not None, line
    done = int(match.group(1))
    assert 2 <= done < 30
    command = shlex.split(match.group(2))
    assert command == ["tuneforge", "run", "study.yaml", "--db", "runs.db", "--workers", "1"]

    write_spec(tmp_path, max_trials=done + 1)  # one more trial keeps the rerun short
    rerun = subprocess.run(
        [*CLI, *command[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    err = ok(rerun)
    assert f"resuming study 'resume': {done} of {done + 1} trials done" in err
    assert re.search(rf"\b{done + 1}/{done + 1}\b", err)


def test_a_rerun_fails_a_trial_an_interrupted_run_left_running(tmp_path: Path) -> None:
    """A suggest that Ctrl-C cut off can be answered after the workers released their
    trials, leaving one ``active`` (its lease holds a ``max_trials`` slot for 10
    minutes). The next local run fails it as interrupted and finishes at once."""
    import tuneforge

    write_spec(tmp_path, max_trials=2)
    ok(cli("run", "study.yaml", "-w", "1", "--no-progress", cwd=tmp_path))
    with tuneforge.local(path=str(tmp_path / "tuneforge.db")) as client:
        study = client.get_study(1)
        study.update(max_trials=3)
        (orphan,) = study.suggest()  # handed out, never run: as if its reply was lost
    write_spec(tmp_path, max_trials=3)
    rerun = subprocess.run(
        [*CLI, "run", "study.yaml", "-w", "1", "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    with sqlite3.connect(tmp_path / "tuneforge.db") as conn:
        rows = dict(conn.execute("SELECT number, state || ':' || coalesce(reason, '') FROM trials"))
    assert rows[orphan.number] == "failed:interrupted"
    assert sorted(rows.values()).count("completed:") == 3
