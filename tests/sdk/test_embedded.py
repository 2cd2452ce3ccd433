"""Embedded mode (no services at all) and the cost of ``import tuneforge``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import tuneforge
from tests.sdk.conftest import clean_env, float_study

#: Server-side and optional packages that ``import tuneforge`` must not load.
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "tuneforge.api",
    "tuneforge.core",
    "tuneforge.cli",
    "numpy",
    "pandas",
    "cloudpickle",
    "yaml",
)


def test_import_loads_only_the_client_stack() -> None:
    code = "import json, sys, tuneforge; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean_env()
    ).stdout
    loaded = json.loads(out)
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []
    assert "httpx" in loaded and "pydantic" in loaded


EMBEDDED_SCRIPT = """
import json, tuneforge
client = tuneforge.Client()
study = client.create_study(
    name="embedded",
    parameters=[{"name": "x", "type": "float", "low": -2.0, "high": 2.0}],
    metrics={"loss": "minimize"},
)
offset = 0.5
result = study.optimize(lambda trial: (trial.params["x"] - offset) ** 2, n_trials=5, n_workers=2)
print(json.dumps({
    "embedded": client.embedded,
    "completed": result.n_completed,
    "best": result.best.values["loss"],
    "counts": study.refresh().trial_counts,
}))
client.close()
"""


def test_embedded_client_runs_optimize_with_no_services(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", EMBEDDED_SCRIPT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["embedded"] is True and summary["completed"] == 5
    assert summary["counts"]["completed"] == 5 and summary["counts"]["active"] == 0
    assert (tmp_path / "tuneforge.db").is_file()
    assert "study embedded" in run.stderr  # the progress bar (stderr)


def test_local_serves_a_file_and_stops_on_exit(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with tuneforge.local(path) as client:
        assert client.embedded and client.url.startswith("http://127.0.0.1:")
        study = client.create_study(float_study("local"))
        with study.suggest_one() as trial:
            trial.complete(loss=1.0)
        url = client.url
    assert path.is_file()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)
    with tuneforge.local(path) as again:  # the same file, reopened: the study is there
        assert again.get_study("local").trial_counts["completed"] == 1
