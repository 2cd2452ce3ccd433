"""``tuneforge datasets upload|list|show|delete`` as real subprocesses against a live server."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import tuneforge
from tests.cli.test_cli_studies import clean_error, ok, run
from tests.conftest import LiveServer
from tuneforge.api.db.migrate import upgrade


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli-datasets') / 'tuneforge.db'}"
    upgrade(url)
    live = LiveServer(url).start()
    yield live
    live.stop()


def test_upload_list_show_delete(server: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "churn.csv"
    pd.DataFrame(
        {"age": [30, None, 45, 52], "plan": ["pro", "basic", None, "pro"], "churned": [0, 1, 0, 1]}
    ).to_csv(path, index=False)
    shown = json.loads(
        ok(run("datasets", "upload", str(path), "--target", "churned", "--format", "json",
               url=server.url))
    )  # fmt: skip
    api = httpx.get(f"{server.url}/api/v1/datasets/{shown['id']}").json()
    assert shown == api and api["name"] == "churn" and api["target"] == "churned"
    table = ok(run("datasets", "upload", str(path), "--name", "churn-2", url=server.url))
    assert "age" in table and "categorical" in table and "fingerprint" in table
    listed = ok(run("datasets", "list", url=server.url))
    assert "churn-2" in listed and api["sha256"][:12] in listed
    as_json = json.loads(ok(run("datasets", "list", "--format", "json", url=server.url)))
    assert [d["name"] for d in as_json] == ["churn", "churn-2"]
    assert "plan" in ok(run("datasets", "show", "churn", url=server.url))
    message = clean_error(run("datasets", "upload", str(path), url=server.url))
    assert "already exists" in message
    bad = clean_error(
        run("datasets", "upload", str(path), "--name", "x", "--target", "Churned", url=server.url)
    )
    assert "target" in bad and "no column 'Churned'" in bad
    assert "deleted dataset" in ok(run("datasets", "delete", "churn", "--yes", url=server.url))
    assert "no dataset 'churn'" in clean_error(run("datasets", "show", "churn", url=server.url))
    assert [d["name"] for d in httpx.get(f"{server.url}/api/v1/datasets").json()["datasets"]] == [
        "churn-2"
    ]


def test_the_export_csv_carries_each_trials_record(server: LiveServer) -> None:
    record = {"reproducibility": {"host": "w1", "fold_scores": {"loss": [0.5, 0.25]}}}
    with tuneforge.Client(server.url) as client:
        study = client.create_study(
            name="exported-record",
            parameters={"x": {"type": "float", "low": 0, "high": 1}},
            metrics={"loss": "minimize"},
        )
        (trial,) = study.suggest()
        trial.complete(loss=0.375, metadata=record)
    text = ok(run("studies", "export", "exported-record", "--format", "csv", url=server.url))
    (row,) = csv.DictReader(io.StringIO(text))
    assert json.loads(row["metadata"]) == record
