"""Bad data on real Celery workers: refused at creation when the server can see it,
and a study whose data breaks every trial stops and says why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.e2e.conftest import all_trials, wait_for
from tests.e2e.test_celery import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(cluster_db: str, broker_url: str) -> Iterator[Cluster]:
    c = Cluster(cluster_db, broker_url)
    yield c
    c.stop()


def spec(name: str, path: Path) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": [{"name": "C", "type": "float", "low": 0.01, "high": 10, "scale": "log"}],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "max_trials": 20,
        "max_active_trials": 2,
        "objective": {
            "kind": "sklearn",
            "estimator": "sklearn.svm.SVC",
            "dataset": {"source": "csv", "path": str(path), "target": "label"},
            "cv": {"type": "kfold", "n_splits": 3},
        },
    }


def test_bad_data_is_refused_at_creation_and_bad_late_rows_stop_the_study(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tuneforge.api.services.datasets import SAMPLE_ROWS

    rng = np.random.default_rng(0)
    n = SAMPLE_ROWS + 100
    frame = pd.DataFrame({"a": rng.normal(size=n), "label": rng.integers(0, 2, size=n)})
    text = frame.assign(colour="red")
    text.to_csv(tmp_path / "text.csv", index=False)
    url = f"{cluster.url}/api/v1/studies"
    r = httpx.post(url, json=spec("text-feature", tmp_path / "text.csv"), timeout=60)
    assert r.status_code == 422 and "'colour'" in r.json()["error"]["message"], r.text
    assert httpx.get(url).json()["studies"] == []

    late = tmp_path / "late.csv"
    frame.to_csv(late, index=False)
    with late.open("a") as f:
        f.write("n/a,1\n")  # after the rows the server samples: only the workers see it
    sid = cluster.run(spec("late-text", late))

    def stopped() -> dict[str, Any] | None:
        study = cluster.study(sid)
        return study if study["state"] == "completed" else None

    study = wait_for(stopped, 180, "the study to stop")
    reason = study["completion_reason"]
    assert reason.startswith("same_error: the first 3 trials all failed with:"), reason
    assert "objective.dataset.features" in reason and "'a'" in reason
    trials = all_trials(cluster.url, sid)
    assert 3 <= len(trials) <= 3 + 2  # stopped early, not after the whole budget of 20
    assert {t["state"] for t in trials if t["state"] not in ("active", "requested")} == {
        "infeasible"
    }
