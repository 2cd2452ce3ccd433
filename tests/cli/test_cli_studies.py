"""``tuneforge studies|trials|best`` run as real subprocesses against a live server.

Every machine-readable output (JSON, CSV) is parsed and compared with what the
REST API itself returns; tables are checked for the values they must show.
Errors must be one line on stderr, a non-zero exit code and never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import tuneforge
from tests.conftest import LiveServer, free_port
from tests.specs import small_spec
from tuneforge.api.db.migrate import upgrade

CLI = [sys.executable, "-m", "tuneforge.cli"]


def run(
    *args: str, url: str | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    env["COLUMNS"] = "250"  # whole table rows on one line
    if url is not None:
        env["TUNEFORGE_URL"] = url
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        input=input,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def clean_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a failed command (and the checks that it is one)."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module (like the ``sqlite_url`` fixture, but shared: each
    start costs seconds). Tests that write use their own study names."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'tuneforge.db'}"
    upgrade(url)
    live = LiveServer(url).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def study(server: LiveServer) -> Iterator[tuneforge.Study]:
    """A study with three completed trials, one failed and one running (read-only)."""
    with tuneforge.Client(server.url) as client:
        handle = client.create_study(
            small_spec("cli-study", max_trials=20, description="for the CLI")
        )
        for trial in handle.suggest(4):
            trial.report(0, accuracy=0.1)
            if trial.number == 3:
                trial.fail("out of memory", retry=False)
            else:
                trial.complete(accuracy=0.5 + trial.number / 10)
        handle.suggest(1)  # stays active
        yield handle.refresh()


def api(server: LiveServer, path: str) -> Any:
    reply = httpx.get(f"{server.url}/api/v1{path}")
    reply.raise_for_status()
    return reply.json()


def test_studies_list_and_show_match_the_api(server: LiveServer, study: tuneforge.Study) -> None:
    listed = json.loads(ok(run("studies", "list", "--format", "json", "--url", server.url)))
    assert listed == api(server, "/studies")["studies"]
    assert "cli-study" in [s["name"] for s in listed]

    rows = csv_rows(ok(run("studies", "list", "--format", "csv", url=server.url)))  # env URL
    rows = [r for r in rows if r["name"] == "cli-study"]
    assert len(rows) == 1
    counts = api(server, f"/studies/{study.id}")["trial_counts"]
    assert {s: int(rows[0][f"trials.{s}"]) for s in counts} == counts
    assert rows[0]["id"] == str(study.id) and rows[0]["max_trials"] == "20"
    assert rows[0]["best_number"] == "2"

    table = ok(run("studies", "list", url=server.url))
    assert "cli-study" in table and "5 / 20" in table and "accuracy=0.7" in table
    assert ok(run("studies", "list", "--state", "paused", url=server.url)).strip() == (
        "no paused studies"
    )

    for ref in (str(study.id), "cli-study"):
        shown = json.loads(ok(run("studies", "show", ref, "--format", "json", url=server.url)))
        assert shown == api(server, f"/studies/{study.id}")
    table = ok(run("studies", "show", "cli-study", url=server.url))
    for text in ("for the CLI", "accuracy (maximize)", "momentum", "optimizer in", "#2"):
        assert text in table


def test_trials_list_and_best_match_the_api(server: LiveServer, study: tuneforge.Study) -> None:
    trials = api(server, f"/studies/{study.id}/trials")["trials"]
    out = ok(run("trials", "list", "cli-study", "--format", "json", url=server.url))
    assert json.loads(out) == trials

    args = ("trials", "list", str(study.id), "--state", "completed", "--format", "csv")
    rows = csv_rows(ok(run(*args, url=server.url)))
    completed = [t for t in trials if t["state"] == "completed"]
    assert [int(r["number"]) for r in rows] == [t["number"] for t in completed]
    for row, trial in zip(rows, completed, strict=True):
        assert float(row["values.accuracy"]) == trial["values"]["accuracy"]
        assert float(row["params.lr"]) == trial["params"]["lr"]
        assert int(row["params.depth"]) == trial["params"]["depth"]
        assert row["params.optimizer"] == trial["params"]["optimizer"]
        assert row["params.momentum"] == str(trial["params"].get("momentum", ""))
        assert row["started_at"] and row["completed_at"]

    table = ok(run("trials", "list", "cli-study", url=server.url))
    for state in ("completed", "failed", "active", "out of memory"):
        assert state in table

    best = api(server, f"/studies/{study.id}/best")["trials"]
    assert json.loads(ok(run("best", "cli-study", "--format", "json", url=server.url))) == best
    assert [t["number"] for t in best] == [2]
    rows = csv_rows(ok(run("best", str(study.id), "--format", "csv", url=server.url)))
    assert [(r["number"], float(r["values.accuracy"])) for r in rows] == [("2", 0.7)]
    assert "best trial" in ok(run("best", "cli-study", url=server.url))


def test_export_json_and_csv(server: LiveServer, study: tuneforge.Study, tmp_path: Path) -> None:
    exported = json.loads(ok(run("studies", "export", "cli-study", url=server.url)))
    trials = api(server, f"/studies/{study.id}/trials")["trials"]
    assert exported == {"study": api(server, f"/studies/{study.id}"), "trials": trials}
    assert exported["trials"][0]["measurements"][0]["values"] == {"accuracy": 0.1}

    target = tmp_path / "out.csv"
    result = run(
        "studies", "export", str(study.id), "--format", "csv", "-o", str(target), url=server.url
    )
    assert "5 trials" in ok(result) + result.stderr
    rows = csv_rows(target.read_text(encoding="utf-8"))
    header = list(rows[0])
    params = [f"params.{p['name']}" for p in study.data.parameters]
    assert header[:2] == ["number", "state"]
    assert header[2 : 2 + len(params)] == params
    assert "values.accuracy" in header
    assert {"created_at", "started_at", "completed_at", "updated_at"} <= set(header)
    assert [(int(r["number"]), r["state"]) for r in rows] == [
        (t["number"], t["state"]) for t in trials
    ]
    failed = next(r for r in rows if r["state"] == "failed")
    assert failed["values.accuracy"] == "" and failed["reason"] == "out of memory"


def test_create_from_yaml_then_delete(server: LiveServer, tmp_path: Path) -> None:
    spec = tmp_path / "study.yaml"
    spec.write_text(
        "name: from-yaml\n"
        "parameters:\n"
        "  - {name: lr, type: float, low: 0.0001, high: 0.1, scale: log}\n"
        "metrics: {loss: minimize}\n"
        "max_trials: 7\n",
        encoding="utf-8",
    )
    created = json.loads(
        ok(run("studies", "create", str(spec), "--format", "json", url=server.url))
    )
    assert created == api(server, f"/studies/{created['id']}")
    assert created["max_trials"] == 7 and created["metrics"][0]["goal"] == "minimize"
    assert "already exists" in clean_error(run("studies", "create", str(spec), url=server.url))
    again = run(
        "studies", "create", str(spec), "--if-exists", "return", "--format", "json", url=server.url
    )
    assert json.loads(ok(again))["id"] == created["id"]
    assert "from-yaml" in ok(run("studies", "show", "from-yaml", url=server.url))

    refused = run("studies", "delete", "from-yaml", input="n\n", url=server.url)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert api(server, f"/studies/{created['id']}")["name"] == "from-yaml"

    assert "deleted study" in ok(run("studies", "delete", "from-yaml", "--yes", url=server.url))
    assert httpx.get(f"{server.url}/api/v1/studies/{created['id']}").status_code == 404
    assert "from-yaml" not in ok(run("studies", "list", url=server.url))


def test_errors_are_one_clear_line(server: LiveServer, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    line = clean_error(run("studies", "list", "--url", dead))
    assert line.startswith(f"Error: cannot reach tuneforge at {dead}: "), line
    assert time.monotonic() - started < 20  # a short retry budget, not the SDK's 60 s

    assert clean_error(run("studies", "show", "nope", url=server.url)) == "Error: no study 'nope'"
    assert clean_error(run("best", "12345", url=server.url)) == "Error: no study '12345'"
    assert "no study 'nope'" in clean_error(run("trials", "list", "nope", url=server.url))

    missing = clean_error(run("studies", "create", str(tmp_path / "missing.yaml"), url=server.url))
    assert "missing.yaml does not exist" in missing

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nparameters: [\n  - a\n", encoding="utf-8")
    line = clean_error(run("studies", "create", str(broken), url=server.url))
    assert "broken.yaml:3:3: YAML syntax error" in line, line

    invalid = tmp_path / "invalid.json"
    bad_spec = small_spec("bad")
    bad_spec["parameters"][0]["low"] = 0  # log scale needs low > 0
    invalid.write_text(json.dumps(bad_spec), encoding="utf-8")
    line = clean_error(run("studies", "create", str(invalid), url=server.url))
    assert "invalid study spec" in line and "parameters[0].low: log scale needs low > 0" in line

    usage = run("studies", "list", "--url", "not-a-url")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    assert "127.0.0.1:8000" in ok(run("studies", "list", "--help"))
