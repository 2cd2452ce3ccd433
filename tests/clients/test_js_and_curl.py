"""The JavaScript client, its examples and the curl scripts, run against a live server.

Each test starts ``tuneforge serve`` on a fresh SQLite file, runs the program as a
user would (``node --test clients/js/test/``, ``node clients/js/example.mjs``,
``node clients/js/pause_resume.mjs``, ``bash clients/curl/walkthrough.sh URL``,
``bash clients/curl/pause_resume.sh URL``), asserts it exits 0, and then checks
what it left on the server. The pause / resume programs are the code that
docs/javascript.md and docs/curl.md show (checked here too). Without Node.js 18+ (or curl) the tests fail in CI
(``CI=true``) and are skipped on a laptop.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, free_port, service_missing

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "clients" / "js"
WALKTHROUGH = ROOT / "clients" / "curl" / "walkthrough.sh"
PAUSE_RESUME = ROOT / "clients" / "curl" / "pause_resume.sh"
DOCS = ROOT / "docs"
MIN_NODE = 18


def tool_missing(message: str) -> None:
    """Fail in CI, skip on a laptop."""
    service_missing(message, FileNotFoundError(message))


@pytest.fixture
def node() -> str:
    """The ``node`` executable (checked before a server is started)."""
    path = shutil.which("node")
    if path is None:
        tool_missing("node (Node.js 18 or newer) is not installed")
        raise AssertionError("unreachable")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    match = re.match(r"v(\d+)\.", version.stdout.strip())
    if match is None or int(match.group(1)) < MIN_NODE:
        tool_missing(f"node {version.stdout.strip()!r} is older than v{MIN_NODE}")
    return path


@pytest.fixture
def curl() -> str:
    """The ``curl`` executable (checked before a server is started)."""
    path = shutil.which("curl")
    if path is None:
        tool_missing("curl is not installed")
        raise AssertionError("unreachable")
    return path


@pytest.fixture
def server(sqlite_url: str) -> Iterator[LiveServer]:
    live = LiveServer(sqlite_url).start()
    yield live
    live.stop()


def run(cmd: list[str], server: LiveServer, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` from the repository root with ``TUNEFORGE_URL`` pointing at ``server``."""
    full_env = {**os.environ, "TUNEFORGE_URL": server.url, **env}
    full_env.pop("TUNEFORGE_API_KEY", None)
    full_env.pop("NODE_OPTIONS", None)
    result = subprocess.run(
        cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, (
        f"{' '.join(cmd)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout[-8000:]}\n--- stderr\n{result.stderr[-8000:]}"
    )
    return result


def api(server: LiveServer, path: str) -> Any:
    reply = httpx.get(f"{server.url}/api/v1{path}", timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def study_named(server: LiveServer, name: str) -> dict[str, Any]:
    studies = api(server, f"/studies?name={name}")["studies"]
    assert len(studies) == 1, f"no study named {name}"
    return studies[0]


def all_trials(server: LiveServer, study_id: int) -> list[dict[str, Any]]:
    trials, token = [], None
    while True:
        page = api(
            server, f"/studies/{study_id}/trials" + (f"?page_token={token}" if token else "")
        )
        trials += page["trials"]
        token = page["next_page_token"]
        if not token:
            return trials


def test_js_client_suite(node: str, server: LiveServer) -> None:
    result = run([node, "--test", "clients/js/test/"], server)
    summary = dict(
        re.findall(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", result.stdout, re.M)
    )
    assert int(summary["tests"]) >= 30, result.stdout[-2000:]
    assert summary["fail"] == summary["cancelled"] == summary["skipped"] == "0", summary
    assert int(summary["pass"]) == int(summary["tests"]) - int(summary["todo"])
    # The suite really talked to this server: its studies are there.
    names = [s["name"] for s in api(server, "/studies?page_size=1000")["studies"]]
    assert sum(name.startswith("js-test-") for name in names) >= 10, names


def test_js_example(node: str, server: LiveServer) -> None:
    name = "js-example-from-pytest"
    result = run([node, str(JS / "example.mjs")], server, TUNEFORGE_STUDY_NAME=name)
    study = study_named(server, name)
    assert study["state"] == "completed" and study["completion_reason"] == "max_trials"
    assert study["max_trials"] == 15
    assert study["trial_counts"]["completed"] == 15, study["trial_counts"]

    trials = all_trials(server, study["id"])
    assert [t["number"] for t in trials] == list(range(15))
    for trial in trials:
        assert trial["state"] == "completed"
        assert [m["step"] for m in trial["measurements"]] == [0, 1, 2]
        assert trial["values"]["loss"] == trial["measurements"][-1]["values"]["loss"]
        assert trial["client_id"].startswith("node-")

    best = api(server, f"/studies/{study['id']}/best")["trials"]
    assert len(best) == 1
    lowest = min(t["values"]["loss"] for t in trials)
    assert best[0]["values"]["loss"] == lowest
    assert f"best: trial {best[0]['number']} " in result.stdout, result.stdout

    # Running it again with the same name resumes the (finished) study: nothing new.
    again = run([node, str(JS / "example.mjs")], server, TUNEFORGE_STUDY_NAME=name)
    assert "after 0 trials from this run" in again.stdout, again.stdout
    assert study_named(server, name)["trial_counts"]["completed"] == 15


def test_js_example_fails_without_a_server(node: str, tmp_path: Path) -> None:
    cmd = [node, str(JS / "example.mjs")]
    env = {**os.environ, "TUNEFORGE_URL": f"http://127.0.0.1:{free_port()}"}  # nobody listens
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "connection_failed" in result.stderr, result.stderr


def test_curl_walkthrough(curl: str, server: LiveServer) -> None:
    name = "curl-walkthrough-from-pytest"
    result = run(["bash", str(WALKTHROUGH), server.url], server, STUDY_NAME=name)
    study = study_named(server, name)
    assert study["state"] == "completed" and study["completion_reason"] == "max_trials"
    assert study["trial_counts"]["completed"] == 4, study["trial_counts"]
    for trial in all_trials(server, study["id"]):
        assert [m["step"] for m in trial["measurements"]] == [1, 2]
        assert trial["values"] == trial["measurements"][-1]["values"]
    best = api(server, f"/studies/{study['id']}/best")["trials"]
    assert len(best) == 1 and best[0]["state"] == "completed"
    out = result.stdout
    assert f"best: trial {best[0]['number']} with loss" in out
    # The error bodies are printed as the server sent them.
    assert '"code": "conflict"' in out
    assert '"code": "not_found"' in out
    assert '"message": "parameters[0].low: log scale needs low > 0, got 0.0"' in out
    # The walk-through's failed create left nothing behind.
    assert all(s["name"] != "broken" for s in api(server, "/studies")["studies"])


def test_curl_walkthrough_fails_on_an_unexpected_status(curl: str, server: LiveServer) -> None:
    name = "curl-walkthrough-taken"
    spec = {
        "name": name,
        "parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "metrics": [{"name": "loss", "goal": "minimize"}],
    }
    taken = httpx.post(f"{server.url}/api/v1/studies", json=spec, timeout=10)
    assert taken.status_code == 201, taken.text
    # The name is taken: the create is a 409, not the expected 201, so the script stops.
    env = {**os.environ, "STUDY_NAME": name}
    result = subprocess.run(
        ["bash", str(WALKTHROUGH), server.url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "expected HTTP 201 from POST /studies, got 409" in result.stderr
    assert '"code": "conflict"' in result.stdout
    assert "2. Suggest" not in result.stdout


# ---------------------------------------------------------------- the pause / resume cycle

EPOCHS = 9
EVENT = re.compile(
    r"^trial (\d+) (paused|completed|resumed) at epoch (\d+)(?: from a checkpoint of epoch (\d+))?$"
)


def check_pause_resume(server: LiveServer, name: str, out: str) -> None:
    """An ASHA study of 9 trials, epochs 1 to 9, run by one worker that saves a checkpoint
    when told to stop: promoted trials resume from it, every epoch is trained once, every
    trial ends finished."""
    study = study_named(server, name)
    assert study["state"] == "completed" and study["completion_reason"] == "max_trials"
    assert study["fidelity"] == {"name": "epochs", "min": 1, "max": EPOCHS}
    trials = all_trials(server, study["id"])
    assert [t["number"] for t in trials] == list(range(9))
    assert {t["state"] for t in trials} <= {"completed", "pruned"}, [t["state"] for t in trials]
    events: dict[int, list[tuple[str, int]]] = {}
    for line in out.splitlines():
        if match := EVENT.match(line):
            number, what, epoch, saved = match.groups()
            if saved is not None:
                assert saved == epoch, line  # the checkpoint holds the step it paused at
            events.setdefault(int(number), []).append((what, int(epoch)))
    resumed = [n for n, e in events.items() if any(what == "resumed" for what, _ in e)]
    assert resumed, out
    for number, seq in events.items():
        for (before, at), (now, again) in itertools.pairwise(seq):
            if now == "resumed":  # handed back where it paused
                assert before == "paused" and at == again, (number, seq)
        steps = [m["step"] for m in trials[number]["measurements"]]
        assert steps == list(range(1, len(steps) + 1)), (number, steps)
        assert seq[-1][1] == steps[-1]
    finished = [t for t in trials if t["state"] == "completed"]
    assert any(t["measurements"][-1]["step"] == EPOCHS for t in finished)
    # every epoch trained once: as many as the server stored, far fewer than 9 x 9
    summary = re.search(r"^trained (\d+) epochs", out, re.M)
    assert summary is not None, out
    trained = int(summary.group(1))
    assert trained == sum(len(t["measurements"]) for t in trials) < 9 * EPOCHS / 2


def test_js_pause_resume_example(node: str, server: LiveServer) -> None:
    name = "js-asha-from-pytest"
    result = run([node, str(JS / "pause_resume.mjs")], server, TUNEFORGE_STUDY_NAME=name)
    check_pause_resume(server, name, result.stdout)


def test_curl_pause_resume(curl: str, server: LiveServer) -> None:
    name = "curl-asha-from-pytest"
    result = run(["bash", str(PAUSE_RESUME), server.url], server, STUDY_NAME=name)
    check_pause_resume(server, name, result.stdout)
    assert "trial 0 has no checkpoint yet: 404 with details.field=checkpoint" in result.stdout


def test_the_docs_show_the_pause_resume_programs() -> None:
    """docs/javascript.md shows clients/js/pause_resume.mjs whole, and docs/curl.md the
    worker loop of clients/curl/pause_resume.sh: the code the tests above run."""
    js = (JS / "pause_resume.mjs").read_text()
    assert f"```js\n{js}```" in (DOCS / "javascript.md").read_text()
    script = PAUSE_RESUME.read_text()
    start = script.index("# --- the worker loop")
    loop = script[script.index("\n", start) + 1 : script.index("# --- end of the worker loop")]
    assert f"```bash\n{loop}```" in (DOCS / "curl.md").read_text()
