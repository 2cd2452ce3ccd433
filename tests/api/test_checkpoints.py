"""Trial checkpoints through the real app: save, load, replace, limits, states, deletion."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import make_client
from tests.specs import small_spec

API = "/api/v1"


def _running_trial(client: TestClient) -> tuple[int, int]:
    study = client.post(f"{API}/studies", json=small_spec()).json()
    reply = client.post(f"{API}/studies/{study['id']}/trials/suggest", json={"count": 1})
    return study["id"], reply.json()["trials"][0]["number"]


def _url(study_id: int, number: int) -> str:
    return f"{API}/studies/{study_id}/trials/{number}/checkpoint"


def test_save_load_and_replace(client: TestClient) -> None:
    study_id, number = _running_trial(client)
    assert client.get(_url(study_id, number)).status_code == 404
    blob = os.urandom(300_000)  # binary, with NUL bytes: no text rules apply
    saved = client.put(
        _url(study_id, number),
        content=blob,
        params={"step": 3},
        headers={"content-type": "application/octet-stream"},
    )
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["size_bytes"] == len(blob)
    assert body["sha256"] == hashlib.sha256(blob).hexdigest()
    assert body["step"] == 3
    loaded = client.get(_url(study_id, number))
    assert loaded.status_code == 200
    assert loaded.content == blob
    assert loaded.headers["x-checkpoint-step"] == "3"
    assert loaded.headers["content-type"] == "application/octet-stream"
    client.put(_url(study_id, number), content=b"newer", params={"step": 5})
    again = client.get(_url(study_id, number))
    assert again.content == b"newer" and again.headers["x-checkpoint-step"] == "5"


def test_missing_trial_and_missing_checkpoint_are_told_apart(client: TestClient) -> None:
    study_id, number = _running_trial(client)
    no_checkpoint = client.get(_url(study_id, number)).json()["error"]
    assert no_checkpoint["details"]["field"] == "checkpoint"
    no_trial = client.get(_url(study_id, number + 50))
    assert no_trial.status_code == 404
    assert no_trial.json()["error"]["details"]["field"] == "number"
    assert client.put(_url(study_id + 99, 0), content=b"x").status_code == 404
    bad_step = client.put(_url(study_id, number), content=b"x", params={"step": -1})
    assert bad_step.status_code == 422


def test_only_running_or_paused_trials_save(client: TestClient) -> None:
    study_id, number = _running_trial(client)
    client.put(_url(study_id, number), content=b"state")
    done = client.post(
        f"{API}/studies/{study_id}/trials/{number}/complete", json={"values": {"accuracy": 0.5}}
    )
    assert done.status_code == 200
    refused = client.put(_url(study_id, number), content=b"late")
    assert refused.status_code == 409
    assert "completed" in refused.json()["error"]["message"]
    assert client.get(_url(study_id, number)).content == b"state"  # kept, readable


def _chunks(total: int, size: int = 65536) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"\x00" * min(size, total - sent)
        sent += size


def test_size_limit_declared_and_streamed(sqlite_url: str, tmp_path: Path) -> None:
    store = tmp_path / "artifacts"
    with make_client(
        sqlite_url,
        reconcile_interval_seconds=0,
        max_checkpoint_bytes=100_000,
        artifact_url=str(store),
    ) as client:
        study_id, number = _running_trial(client)
        client.put(_url(study_id, number), content=b"kept")
        declared = client.put(_url(study_id, number), content=b"\x01" * 100_001)
        assert declared.status_code == 413
        assert declared.json()["error"]["details"]["max_bytes"] == 100_000
        streamed = client.put(_url(study_id, number), content=_chunks(300_000))
        assert streamed.status_code == 413
        assert client.get(_url(study_id, number)).content == b"kept"
        leftovers = [p.name for p in store.rglob("*") if ".part-" in p.name]
        assert leftovers == []
        fits = client.put(_url(study_id, number), content=_chunks(100_000))
        assert fits.status_code == 200 and fits.json()["size_bytes"] == 100_000
        # the JSON routes keep their own (smaller) limit
        assert client.app.state.settings.max_body_bytes < 100_000 * 100


def test_checkpoints_go_with_their_study(sqlite_url: str, tmp_path: Path) -> None:
    store = tmp_path / "artifacts"
    with make_client(sqlite_url, reconcile_interval_seconds=0, artifact_url=str(store)) as client:
        study_id, number = _running_trial(client)
        client.put(_url(study_id, number), content=b"model")
        (folder,) = (store / "studies").glob(f"{study_id}-*")  # id and creation time
        assert any(p.is_file() for p in folder.rglob("*"))
        assert client.delete(f"{API}/studies/{study_id}").status_code == 204
        assert not folder.exists()


def test_default_location_is_beside_the_sqlite_file(tmp_path: Path) -> None:
    from tuneforge.api.artifacts import default_artifact_url

    db = tmp_path / "x" / "tuneforge.db"
    assert default_artifact_url(f"sqlite:///{db}") == str(tmp_path / "x" / "tuneforge-artifacts")
    assert default_artifact_url("postgresql://u@h/db").endswith("tuneforge-artifacts")
