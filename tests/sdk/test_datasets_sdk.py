"""The SDK's datasets (sync and async, in-process and live) and concurrent ``suggest_one``
calls on one AsyncClient, which get distinct trials."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import tuneforge
from tests.conftest import make_client
from tests.sdk.conftest import float_study


def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.5, 2.5, None, 4.0], "c": ["a", "b", "a", None], "y": [0, 1, 0, 1]})


def test_upload_list_get_download_delete(sdk: Any, name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name[:40]}.csv"
    frame().to_csv(path, index=False)
    from_file = sdk.upload_dataset(path, target="y")
    assert from_file.name == path.stem and from_file.format == "csv" and from_file.rows == 4
    assert [(c.name, c.kind, c.missing) for c in from_file.columns] == [
        ("x", "numeric", 1),
        ("c", "categorical", 1),
        ("y", "numeric", 0),
    ]
    assert sdk.download_dataset(from_file.id) == path.read_bytes()
    from_frame = sdk.upload_dataset(frame(), name=f"{name[:60]}-frame", groups="c")
    assert from_frame.format == "parquet" and from_frame.groups == "c"
    assert [c.kind for c in from_frame.columns] == [c.kind for c in from_file.columns]
    listed = {d.id for d in sdk.list_datasets()}
    assert {from_file.id, from_frame.id} <= listed
    assert sdk.get_dataset(from_frame.name).id == from_frame.id
    assert from_file.reference() == {"source": "uploaded", "id": from_file.id}
    with pytest.raises(tuneforge.Conflict):
        sdk.upload_dataset(path)  # the name is taken
    with pytest.raises(tuneforge.InvalidSpec) as info:
        sdk.upload_dataset(path, name=f"{name[:60]}-bad", target="nope")
    assert info.value.field == "target"
    sdk.delete_dataset(from_file.name)
    sdk.delete_dataset(from_frame.id)
    with pytest.raises(tuneforge.NotFound):
        sdk.get_dataset(from_file.id)
    with pytest.raises(ValueError, match="name a DataFrame"):
        sdk.upload_dataset(frame())


def test_concurrent_suggest_one_on_one_async_client_gets_distinct_trials(
    sqlite_url: str, name: str
) -> None:
    with make_client(sqlite_url, reconcile_interval_seconds=0) as app_client:
        app = app_client.app

        async def run() -> list[tuneforge.AsyncTrial]:
            transport = httpx.ASGITransport(app=app)
            async with tuneforge.AsyncClient("http://sdk.test", transport=transport) as client:
                study = await client.create_study(float_study(name, max_trials=3))
                trials = await asyncio.gather(*(study.suggest_one() for _ in range(3)))
                for t in trials:
                    await t.complete(loss=float(t.number))  # no 409: each holds its own
                return list(trials)

        trials = asyncio.run(run())
    assert sorted(t.number for t in trials) == [0, 1, 2]
    assert all(t.state == "completed" for t in trials)
    assert len({t.data.client_id for t in trials}) == 3


def test_suggest_one_waits_while_the_study_is_paused_and_gets_a_trial_on_resume(
    sqlite_url: str, name: str
) -> None:
    with make_client(sqlite_url, reconcile_interval_seconds=0) as app_client:
        app = app_client.app

        async def run() -> tuneforge.AsyncTrial:
            transport = httpx.ASGITransport(app=app)
            async with tuneforge.AsyncClient("http://sdk.test", transport=transport) as client:
                study = await client.create_study(float_study(name, max_trials=2))
                await study.pause()
                waiting = asyncio.ensure_future(study.suggest_one(timeout=20))
                await asyncio.sleep(0.5)
                assert not waiting.done()  # paused: waited on, not "no trial"
                await study.resume()
                trial = await waiting
                await trial.complete(loss=1.0)
                return trial

        assert asyncio.run(run()).state == "completed"
