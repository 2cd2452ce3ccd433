"""docs/datasets.md's walk-through, run as written: its Python writes the CSV, its YAML is
the study, its shell commands run against the API server and two Celery workers on real
PostgreSQL and Redis; then the result is read back through the API."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import E2E_TIMEOUT, all_trials
from tests.e2e.test_celery import Cluster

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "datasets.md"


def blocks(language: str) -> list[str]:
    """The fenced code blocks of the walk-through (before the reference sections)."""
    walkthrough = DOC.read_text().split("\n## Datasets\n")[0]
    return re.findall(rf"```{language}\n(.*?)```", walkthrough, re.DOTALL)


@pytest.fixture
def cluster(cluster_db: str, broker_url: str) -> Iterator[Cluster]:
    c = Cluster(cluster_db, broker_url)
    yield c
    c.stop()


def shell(script: str, cwd: Path, url: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TUNEFORGE_URL"] = url
    env["COLUMNS"] = "200"
    script = script.replace("export TUNEFORGE_URL=http://127.0.0.1:8000\n", "")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


def test_the_walkthrough_runs_as_documented(cluster: Cluster, tmp_path: Path) -> None:
    (python,) = blocks("python")
    (spec,) = blocks("yaml")
    setup, upload, run = blocks("bash")
    subprocess.run([sys.executable, "-c", python], cwd=tmp_path, check=True, timeout=120)
    csv = tmp_path / "churn.csv"
    (tmp_path / "churn-study.yaml").write_text(spec)
    shell(setup, tmp_path, cluster.url)

    shown = shell(upload, tmp_path, cluster.url)
    for word in ("age", "categorical", "datetime", "fingerprint"):
        assert word in shown, shown
    (dataset,) = cluster.http.get("/datasets").json()["datasets"]
    assert dataset["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    kinds = {c["name"]: c["kind"] for c in dataset["columns"]}
    assert kinds == {
        "age": "numeric",
        "plan": "categorical",
        "region": "categorical",
        "monthly_spend": "numeric",
        "tenure_months": "numeric",
        "signup_date": "datetime",
        "churned": "categorical",
    }
    assert {c["name"]: c["missing"] for c in dataset["columns"]}["age"] > 0

    out = shell(run, tmp_path, cluster.url)
    assert re.search(r"study 'churn-pipeline' \(id \d+\): \d+ completed", out), out
    cv = re.search(r"CV roc_auc: (0\.\d+)", out)
    test = re.search(r"held-out test roc_auc: (0\.\d+) \(evaluated once\)", out)
    assert cv and test, out
    assert 0.6 < float(cv.group(1)) < 1 and 0.5 < float(test.group(1)) <= 1

    (study,) = cluster.http.get("/studies", params={"name": "churn-pipeline"}).json()["studies"]
    assert study["state"] == "completed" and study["evaluation"]["state"] == "done"
    assert study["objective"]["dataset"]["sha256"] == dataset["sha256"]
    trials = all_trials(cluster.url, study["id"])
    finished = [t for t in trials if t["state"] in ("completed", "pruned")]
    assert len(finished) >= 6
    for t in finished:
        record = t["metadata"]["reproducibility"]
        assert record["dataset"]["sha256"] == dataset["sha256"]
        assert set(t["values"]) == {"roc_auc", "accuracy"}
        folds = record["fold_scores"]["roc_auc"]
        assert 1 <= len(folds) <= 4 and len(folds) == len(t["measurements"])
        assert record["packages"]["scikit-learn"] and record["host"]
    exported = json.loads((tmp_path / "trials.json").read_text())
    assert {t["number"] for t in exported} == {t["number"] for t in trials}
    again = httpx.post(f"{cluster.url}/api/v1/studies/{study['id']}/evaluate", timeout=E2E_TIMEOUT)
    assert again.status_code == 409  # the held-out rows were scored once
