"""``tuneforge studies importance`` and ``studies import`` as subprocesses against a live
server; imports read real exports of the server's own endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import tuneforge
from tests.cli.test_cli_studies import api, clean_error, ok, run
from tests.conftest import LiveServer
from tuneforge.api.db.migrate import upgrade

PARAMS = [
    {"name": "x", "type": "float", "low": 0.0, "high": 1.0},
    {"name": "n", "type": "int", "low": 1, "high": 9},
    {"name": "act", "type": "categorical", "values": ["relu", True, 3]},
]


def spec(name: str, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": parameters or PARAMS,
        "metrics": [{"name": "loss", "goal": "minimize"}],
        "algorithm": "random",
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli-analysis') / 'tuneforge.db'}"
    upgrade(url)
    live = LiveServer(url).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def source(server: LiveServer) -> tuneforge.Study:
    """20 completed trials (loss driven by x), one failed, one running."""
    with tuneforge.Client(server.url) as client:
        study = client.create_study(spec("source"))
        rng = np.random.default_rng(2)
        for i in range(20):
            params = {"x": float(rng.random()), "n": int(rng.integers(1, 10))}
            params["act"] = ["relu", True, 3][i % 3]
            study.add_trial(
                params, {"loss": 5 * params["x"]}, metadata={"seed": i, "env": {"os": "linux"}}
            )
        for trial in study.suggest(2):
            if trial.number == 20:
                trial.fail("lost", retry=False)
        return study.refresh()


def test_importance_table_and_json(server: LiveServer, source: tuneforge.Study) -> None:
    table = ok(run("studies", "importance", "source", "--url", server.url))
    assert "importance for loss (20 completed trials)" in table
    assert "Pairwise interactions" in table and "x x n" in table
    lines = [line for line in table.splitlines() if line.strip().startswith("│")]
    assert lines and "x" in lines[0].split("│")[1]  # x comes first
    shown = json.loads(
        ok(run("studies", "importance", str(source.id), "--format", "json", url=server.url))
    )
    assert shown == api(server, f"/studies/{source.id}/importance")
    error = clean_error(
        run("studies", "importance", "source", "--objective", "acc", url=server.url)
    )
    assert "objective" in error and "acc" in error


def download(server: LiveServer, study_id: int, fmt: str, path: Path) -> Path:
    reply = httpx.get(f"{server.url}/api/v1/studies/{study_id}/trials", params={"format": fmt})
    reply.raise_for_status()
    path.write_bytes(reply.content)
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_import_an_export_into_a_narrower_study(
    server: LiveServer, source: tuneforge.Study, tmp_path: Path, fmt: str
) -> None:
    export = download(server, source.id, fmt, tmp_path / f"source.{fmt}")
    narrow = [dict(PARAMS[0], high=0.5), *PARAMS[1:]]
    with tuneforge.Client(server.url) as client:
        target = client.create_study(spec(f"target-{fmt}", narrow))
    out = ok(run("studies", "import", target.name, "--from-file", str(export), url=server.url))
    completed = [t for t in api(server, f"/studies/{source.id}/trials?page_size=100")["trials"]]
    fits = [t for t in completed if t["state"] == "completed" and t["params"]["x"] <= 0.5]
    unfit = sum(1 for t in completed if t["state"] == "completed") - len(fits)
    assert out.startswith(f"imported {len(fits)} trial(s) into study {target.id}")
    assert f"skipped {unfit + 2} (2 not completed, {unfit} rejected)" in out
    assert "params.x" in out  # the first rejection says why
    got = api(server, f"/studies/{target.id}/trials?page_size=100")["trials"]
    assert [t["params"] for t in got] == [t["params"] for t in fits]  # types restored from CSV
    assert [t["values"] for t in got] == [t["values"] for t in fits]
    assert all(t["state"] == "completed" for t in got)
    first = got[0]["metadata"]
    assert first["imported_from"] == {"file": export.name, "number": fits[0]["number"]}
    assert first["env"] == {"os": "linux"}
    assert str(first["seed"]) == str(fits[0]["metadata"]["seed"])  # CSV keeps text


def test_import_from_another_study_and_usage_errors(
    server: LiveServer, source: tuneforge.Study
) -> None:
    with tuneforge.Client(server.url) as client:
        target = client.create_study(spec("copy"))
    out = ok(run("studies", "import", "copy", "--from-study", "source", url=server.url))
    assert out.strip() == f"imported 20 trial(s) into study {target.id} 'copy'"
    got = api(server, f"/studies/{target.id}/trials?page_size=100")["trials"]
    assert got[3]["metadata"]["imported_from"] == {
        "study": source.id,
        "study_name": "source",
        "number": 3,
    }
    assert "exactly one of" in run("studies", "import", "copy", url=server.url).stderr
    missing = clean_error(run("studies", "import", "copy", "--from-study", "nope", url=server.url))
    assert "nope" in missing
