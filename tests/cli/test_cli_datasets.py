"""``tuneforge datasets upload|list|show|delete`` as real subprocesses against a live server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

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
