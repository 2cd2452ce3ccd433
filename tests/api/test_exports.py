"""``GET /studies/{id}/trials?format=csv|jsonl``: every trial streamed, through the real app on
SQLite and PostgreSQL, compared with what the JSON pages of the same endpoint say."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tuneforge.api.services import exports

API = "/api/v1"
SPEC = {
    "name": "export-me",
    "parameters": [
        {"name": "x", "type": "float", "low": 0, "high": 1},
        {"name": "kind", "type": "categorical", "values": ["a", "b"]},
        {
            "name": "depth",
            "type": "int",
            "low": 1,
            "high": 4,
            "condition": {"parent": "kind", "values": ["b"]},
        },
    ],
    "metrics": [{"name": "loss", "goal": "minimize"}, {"name": "secs", "role": "tracked"}],
    "algorithm": "random",
}


def make_study(client: TestClient, n: int) -> int:
    """``n`` completed trials with nested metadata, one running trial with measurements."""
    sid = client.post(f"{API}/studies", json=SPEC).json()["id"]
    for i in range(n):
        params: dict[str, Any] = {"x": i / n, "kind": "a" if i % 2 else "b"}
        if params["kind"] == "b":
            params["depth"] = 1 + i % 4
        metadata = {"seed": i, "packages": {"numpy": "2.1"}, "folds": [0.5, i / n]}
        r = client.post(
            f"{API}/studies/{sid}/trials",
            json={
                "params": params,
                "state": "completed",
                "values": {"loss": i},
                "metadata": metadata,
            },
        )
        assert r.status_code == 201, r.text
    running = client.post(f"{API}/studies/{sid}/trials/suggest", json={"count": 1}).json()
    number = running["trials"][0]["number"]
    for step in (0, 1, 2):
        client.post(
            f"{API}/studies/{sid}/trials/{number}/measurements",
            json={"step": step, "values": {"loss": 10 - step}},
        )
    return sid


def json_pages(client: TestClient, sid: int, **query: Any) -> list[dict[str, Any]]:
    out, token = [], None
    while True:
        params = {**query, "page_size": 7, **({"page_token": token} if token else {})}
        page = client.get(f"{API}/studies/{sid}/trials", params=params).json()
        assert set(page) == {"trials", "next_page_token"}  # the default shape is unchanged
        out += page["trials"]
        token = page["next_page_token"]
        if token is None:
            return out


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pages of 4 trials, and the size of every page the export read."""
    monkeypatch.setattr(exports, "CHUNK", 4)
    sizes: list[int] = []
    real = exports.list_trials

    def counted(*args: Any, **kwargs: Any) -> Any:
        trials, more = real(*args, **kwargs)
        sizes.append(len(trials))
        return trials, more

    monkeypatch.setattr(exports, "list_trials", counted)
    return sizes


def test_jsonl_streams_every_trial_as_the_json_pages_show_it(
    client: TestClient, small_chunks: list[int]
) -> None:
    sid = make_study(client, 13)
    r = client.get(f"{API}/studies/{sid}/trials", params={"format": "jsonl"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert f'filename="study-{sid}-trials.jsonl"' in r.headers["content-disposition"]
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines == json_pages(client, sid)
    assert len(lines) == 14 and lines[-1]["measurements"][2]["values"] == {"loss": 8.0}
    assert small_chunks == [4, 4, 4, 2]  # read page by page, never the whole study at once


def test_csv_flattens_params_values_times_and_metadata(
    client: TestClient, small_chunks: list[int]
) -> None:
    sid = make_study(client, 9)
    r = client.get(f"{API}/studies/{sid}/trials", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    header = r.text.splitlines()[0].split(",")
    params = ["params.x", "params.kind", "params.depth"]
    assert header[:7] == ["number", "state", *params, "values.loss", "values.secs"]
    assert header[-3:] == ["metadata.folds", "metadata.packages.numpy", "metadata.seed"]
    assert "n_measurements" in header and "last_step" in header
    pages = json_pages(client, sid)
    assert [int(row["number"]) for row in rows] == [t["number"] for t in pages]
    for row, trial in zip(rows, pages, strict=True):
        assert row["state"] == trial["state"]
        assert float(row["params.x"]) == trial["params"]["x"]
        assert row["params.depth"] == str(trial["params"].get("depth", ""))
        if trial["values"]:
            assert float(row["values.loss"]) == trial["values"]["loss"]
            assert row["values.secs"] == ""
            assert json.loads(row["metadata.folds"]) == trial["metadata"]["folds"]
            assert row["metadata.packages.numpy"] == "2.1"
        assert (
            row["created_at"].endswith("Z") and row["created_at"][:19] == trial["created_at"][:19]
        )
    running = rows[-1]
    assert running["state"] == "active" and running["metadata.seed"] == ""
    assert (running["n_measurements"], running["last_step"]) == ("3", "2")


def test_exports_take_the_list_filters(client: TestClient) -> None:
    sid = make_study(client, 5)
    jsonl = client.get(f"{API}/studies/{sid}/trials?format=jsonl&state=active").text
    assert [json.loads(x)["state"] for x in jsonl.splitlines()] == ["active"]
    rows = list(
        csv.DictReader(
            io.StringIO(client.get(f"{API}/studies/{sid}/trials?format=csv&state=completed").text)
        )
    )
    assert [r["number"] for r in rows] == ["0", "1", "2", "3", "4"]


def test_export_errors_are_4xx_naming_the_field(client: TestClient) -> None:
    assert client.get(f"{API}/studies/999999/trials?format=csv").status_code == 404
    sid = make_study(client, 1)
    bad = client.get(f"{API}/studies/{sid}/trials?format=xml")
    assert bad.status_code == 422 and "format" in bad.json()["error"]["message"]
    naive = client.get(f"{API}/studies/{sid}/trials?format=csv&updated_after=2026-01-01T00:00:00")
    assert naive.status_code == 422
    assert naive.json()["error"]["details"]["field"] == "updated_after"


def test_many_metadata_keys_fall_back_to_one_json_column(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "MAX_METADATA_COLUMNS", 2)
    sid = make_study(client, 3)
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"{API}/studies/{sid}/trials?format=csv").text))
    )
    assert "metadata" in rows[0] and not any(k.startswith("metadata.") for k in rows[0])
    assert json.loads(rows[1]["metadata"])["packages"] == {"numpy": "2.1"}
