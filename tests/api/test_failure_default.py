"""A managed study that sets no ``max_failed_trials`` gets the server's default
(``TUNEFORGE_DEFAULT_MAX_FAILED_TRIALS``) when it is created, and completes with
``completion_reason: max_failed_trials`` once that many trials failed, each differently;
through the real app on SQLite and PostgreSQL, and as the SDK and CLI show it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import anyio.from_thread
import pytest
from fastapi.testclient import TestClient
from rich.console import Console

import tuneforge
from tests.api.test_managed_data import fail, iris_study, managed_spec, next_trial, study
from tests.conftest import make_client
from tests.sdk.conftest import PortalTransport
from tests.specs import small_spec
from tuneforge.cli_output import study_tables
from tuneforge.cli_run import summary

API = "/api/v1"
IRIS = {"source": "sklearn", "name": "iris"}


@pytest.fixture
def strict(db_url: str) -> Iterator[TestClient]:
    """The app with a default of 4 failed trials per managed study."""
    with make_client(db_url, reconcile_interval_seconds=0, default_max_failed_trials=4) as c:
        yield c


def created(client: TestClient, spec: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"{API}/studies", json=spec)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_the_default_is_stored_for_managed_studies_only(strict: TestClient) -> None:
    managed = created(strict, managed_spec(IRIS, name="managed"))
    assert managed["max_failed_trials"] == 4
    assert study(strict, managed["id"])["max_failed_trials"] == 4
    own = created(strict, managed_spec(IRIS, name="own", max_failed_trials=50))
    assert own["max_failed_trials"] == 50
    plain = created(strict, small_spec("plain"))
    assert plain["max_failed_trials"] is None
    # the same body again is the same study (the default is part of the stored spec)
    r = strict.post(
        f"{API}/studies", params={"if_exists": "return"}, json=managed_spec(IRIS, name="managed")
    )
    assert r.status_code == 200 and r.json()["id"] == managed["id"], r.text


def test_the_server_default_is_twenty_and_zero_gives_none(db_url: str) -> None:
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        assert created(client, managed_spec(IRIS, name="a"))["max_failed_trials"] == 20
    with make_client(db_url, reconcile_interval_seconds=0, default_max_failed_trials=0) as c:
        assert created(c, managed_spec(IRIS, name="b"))["max_failed_trials"] is None


def test_nested_cv_folds_get_the_default(strict: TestClient) -> None:
    body = {"study": managed_spec(IRIS, name="folds"), "outer_splits": 2, "run": False}
    r = strict.post(f"{API}/nested-cv", json=body)
    assert r.status_code == 201, r.text
    listed = strict.get(f"{API}/studies").json()["studies"]
    assert [s["max_failed_trials"] for s in listed] == [4, 4]


def test_different_failures_complete_the_study_at_the_default(strict: TestClient) -> None:
    sid = iris_study(strict)
    for reason in ("MemoryError", "ValueError: bad C", "KeyError: 'label'"):
        fail(strict, sid, reason)
    assert study(strict, sid)["state"] == "active"  # not alike: the same-error rule holds off
    fail(strict, sid, "TimeoutError")
    data = study(strict, sid)
    assert data["state"] == "completed"
    assert data["completion_reason"] == "max_failed_trials"
    assert data["trial_counts"]["failed"] == 4
    r = strict.post(f"{API}/studies/{sid}/trials/suggest", json={"count": 1})
    assert r.json()["trials"] == [] and r.json()["study_state"] == "completed"
    # raising the limit reopens it
    r = strict.patch(f"{API}/studies/{sid}", json={"max_failed_trials": 10})
    assert r.status_code == 200 and r.json()["state"] == "active", r.text


def test_the_sdk_and_the_cli_show_why_it_stopped(strict: TestClient) -> None:
    sid = iris_study(strict)
    n = next_trial(strict, sid)
    r = strict.post(f"{API}/studies/{sid}/trials/{n}/complete", json={"values": {"score": 0.9}})
    assert r.status_code == 200, r.text
    with anyio.from_thread.start_blocking_portal() as portal:
        transport = PortalTransport(strict.app, portal)
        with tuneforge.Client("http://sdk.test", transport=transport) as sdk:
            handle = sdk.get_study(sid)
            for reason in ("a", "b", "c", "d"):
                fail(strict, sid, f"Error {reason}: x{reason}")
            data = handle.refresh().data
            text = summary(handle, "server: test")
    assert data.completion_reason == "max_failed_trials" and data.max_failed_trials == 4
    assert "best configuration (trial 0)" in text, text
    assert "the study ended: max_failed_trials (4) reached" in text, text
    shown = io.StringIO()
    Console(file=shown, width=200).print(study_tables(data)[0])
    assert "completed (max_failed_trials)" in shown.getvalue()
    assert "max_failed_trials 4" in shown.getvalue()
