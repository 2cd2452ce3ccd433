"""Uploaded datasets through the real app on SQLite and PostgreSQL: upload CSV and
Parquet, what the server detects, limits and bad bodies (nothing stored), studies that
name a dataset, and every bad dataset or pipeline spec a 4xx naming its field."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_client

API = "/api/v1"
CSV = {"content-type": "text/csv"}
BINARY = {"content-type": "application/octet-stream"}


def table(n: int = 120) -> pd.DataFrame:
    """Mixed columns with missing values: what the walk-through uploads."""
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "age": np.where(rng.random(n) < 0.1, np.nan, rng.integers(18, 80, size=n)),
            "plan": pd.Series(rng.choice(["basic", "pro", "team"], size=n)).where(
                rng.random(n) > 0.1, None
            ),
            "signup": pd.date_range("2022-01-01", periods=n, freq="D").astype(str),
            "spend": rng.gamma(2.0, 30.0, size=n).round(2),
            "churned": rng.choice(["yes", "no"], size=n),
        }
    )


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out, index=False)
    return out.getvalue()


def upload(client: TestClient, body: bytes, headers: dict[str, str] = CSV, **params: Any) -> Any:
    params.setdefault("name", "churn")
    return client.post(f"{API}/datasets", params=params, content=body, headers=headers)


def stored_files(client: TestClient) -> list[str]:
    root = client.app.state.settings.artifact_url  # type: ignore[attr-defined]
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
    )


def study(name: str, dataset: dict[str, Any], **objective: Any) -> dict[str, Any]:
    model = objective.pop(
        "pipeline",
        {
            "columns": {
                "numeric": {"impute": "median", "scale": "standard"},
                "categorical": {"impute": "most_frequent", "encode": "onehot"},
            },
            "steps": [{"name": "model", "estimator": "sklearn.linear_model.LogisticRegression"}],
        },
    )
    return {
        "name": name,
        "parameters": objective.pop(
            "parameters",
            [{"name": "model__C", "type": "float", "low": 0.01, "high": 10, "scale": "log"}],
        ),
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "max_trials": 4,
        "objective": {
            "kind": "sklearn",
            "dataset": {"source": "uploaded", **dataset},
            **({"pipeline": model} if model is not None else {}),
            "cv": {"type": "stratified_kfold", "n_splits": 3},
            **objective,
        },
    }


@pytest.fixture
def uploaded(client: TestClient) -> dict[str, Any]:
    r = upload(client, csv_bytes(table()), target="churned")
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_csv_upload_is_fingerprinted_and_its_columns_typed(client: TestClient) -> None:
    body = csv_bytes(table())
    r = upload(client, body, target="churned")
    assert r.status_code == 201, r.text
    data = r.json()
    assert data["sha256"] == hashlib.sha256(body).hexdigest()
    assert (data["format"], data["rows"], data["size_bytes"]) == ("csv", 120, len(body))
    kinds = {c["name"]: (c["kind"], c["missing"]) for c in data["columns"]}
    frame = table()
    assert kinds == {
        "age": ("numeric", int(frame["age"].isna().sum())),
        "plan": ("categorical", int(frame["plan"].isna().sum())),
        "signup": ("datetime", 0),
        "spend": ("numeric", 0),
        "churned": ("categorical", 0),
    }
    assert data["target"] == "churned" and data["groups"] is None and data["project"] == "default"
    assert client.get(f"{API}/datasets/{data['id']}").json() == data
    assert client.get(f"{API}/datasets").json() == {"datasets": [data], "next_page_token": None}
    content = client.get(f"{API}/datasets/{data['id']}/content")
    assert content.status_code == 200 and content.content == body
    assert content.headers["x-dataset-sha256"] == data["sha256"]
    assert stored_files(client) == [f"datasets/{data['sha256']}", f"datasets/{data['sha256']}.json"]


def test_a_parquet_upload_of_the_same_data_gets_the_same_columns(client: TestClient) -> None:
    from_csv = upload(client, csv_bytes(table()), name="as-csv").json()
    typed = table().assign(signup=pd.to_datetime(table()["signup"]))
    r = upload(client, parquet_bytes(typed), headers=BINARY, name="as-parquet")
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "parquet" and r.json()["sha256"] != from_csv["sha256"]
    assert r.json()["columns"] == from_csv["columns"] and r.json()["rows"] == from_csv["rows"]


@pytest.mark.parametrize(
    ("body", "params", "field"),
    [
        (b"\x00\x01\x02garbage\xff\xfe", {}, "body"),
        (b"", {}, "body"),
        (b"a,b\n", {}, "body"),
        (b"a,b\n1,2\n", {"target": "c"}, "target"),
        (b"a,b\n1,2\n", {"groups": "G"}, "groups"),
        (b"a,b\n1,2\n", {"format": "parquet"}, "format"),
        (b"a,b\n1,2\n", {"name": " padded "}, "name"),
        (b"a,b\n1,2\n", {"name": "   "}, "name"),
        (b"a,b\n1,2\n", {"target": "a", "groups": "a"}, "groups"),
    ],
)
def test_a_bad_upload_is_a_422_naming_its_field_and_stores_nothing(
    client: TestClient, body: bytes, params: dict[str, Any], field: str
) -> None:
    r = upload(client, body, **params)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == field
    assert client.get(f"{API}/datasets").json()["datasets"] == []
    assert stored_files(client) == []


def test_a_taken_name_is_a_409(client: TestClient, uploaded: dict[str, Any]) -> None:
    r = upload(client, b"a,b\n1,2\n")
    assert r.status_code == 409 and r.json()["error"]["details"]["dataset_id"] == uploaded["id"]
    assert len(client.get(f"{API}/datasets").json()["datasets"]) == 1


@pytest.fixture
def small_limit(db_url: str) -> Iterator[TestClient]:
    with make_client(db_url, reconcile_interval_seconds=0, max_dataset_bytes=1000) as c:
        yield c


def test_an_upload_over_the_limit_is_413_declared_or_streamed_and_stores_nothing(
    small_limit: TestClient,
) -> None:
    body = csv_bytes(table())
    assert len(body) > 1000
    r = upload(small_limit, body)
    assert r.status_code == 413 and r.json()["error"]["details"] == {"max_bytes": 1000}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        for i in range(0, len(body), 256):
            yield body[i : i + 256]

    r = upload(small_limit, chunks())  # type: ignore[arg-type]
    assert r.status_code == 413, r.text
    assert small_limit.get(f"{API}/datasets").json()["datasets"] == []
    assert stored_files(small_limit) == []
    assert upload(small_limit, b"a,b\n1,2\n").status_code == 201  # under the limit: fine


def test_a_study_names_a_dataset_by_name_or_id_and_gets_its_fingerprint(
    client: TestClient, uploaded: dict[str, Any]
) -> None:
    by_name = client.post(f"{API}/studies", json=study("by-name", {"name": "churn"}))
    assert by_name.status_code == 201, by_name.text
    dataset = by_name.json()["objective"]["dataset"]
    assert dataset == {
        "source": "uploaded",
        "id": uploaded["id"],
        "name": "churn",
        "sha256": uploaded["sha256"],
        "format": "csv",
        "target": "churned",
    }
    by_id = client.post(f"{API}/studies", json=study("by-id", {"id": uploaded["id"]}))
    assert by_id.status_code == 201 and by_id.json()["objective"]["dataset"] == dataset
    again = client.post(
        f"{API}/studies",
        params={"if_exists": "return"},
        json=study("by-id", {"id": uploaded["id"]}),
    )
    assert again.status_code == 200 and again.json()["id"] == by_id.json()["id"]
    echoed = {**by_id.json(), "name": "echoed"}  # the stored spec is a valid spec again
    keep = ("name", "parameters", "metrics", "max_trials", "objective")
    r = client.post(f"{API}/studies", json={k: echoed[k] for k in keep})
    assert r.status_code == 201, r.text


REGRESSOR = {"steps": [{"name": "model", "estimator": "sklearn.linear_model.Ridge"}]}
NO_ENCODER = {
    "columns": {"numeric": {"impute": "median"}},
    "steps": [{"name": "model", "estimator": "sklearn.linear_model.LogisticRegression"}],
}
BAD_SPECS = [
    ("unknown column", {"name": "churn", "features": ["age", "nope"]}, {}, "objective.dataset.features"),
    ("target not in the file", {"name": "churn", "target": "Churned"}, {}, "objective.dataset.target"),
    ("no target anywhere", {"name": "untargeted"}, {}, "objective.dataset.target"),
    ("non-numeric target for a regressor", {"name": "churn"},
     {"pipeline": {**REGRESSOR, "columns": NO_ENCODER["columns"] | {"categorical": {}}},
      "parameters": [{"name": "model__alpha", "type": "float", "low": 0.1, "high": 1}],
      "cv": {"type": "kfold", "n_splits": 3}},
     "objective.dataset.target"),
    ("a text feature without an encoder", {"name": "churn"}, {"pipeline": NO_ENCODER},
     "objective.dataset.features"),
    ("a step not on the allow-list", {"name": "churn"},
     {"pipeline": {"steps": [{"name": "model", "estimator": "os.system"}]}},
     "objective.pipeline.steps[0].estimator"),
    ("a transformer as the last step", {"name": "churn"},
     {"pipeline": {"steps": [{"name": "model", "estimator": "sklearn.decomposition.PCA"}]}},
     "objective.pipeline.steps[0].estimator"),
    ("a wrong step__param name", {"name": "churn"},
     {"parameters": [{"name": "model__c", "type": "float", "low": 0.1, "high": 1}]},
     "parameters[0].name"),
    ("a value the class refuses", {"name": "churn"},
     {"parameters": [{"name": "model__C", "type": "float", "low": 0, "high": 1}]},
     "parameters[0].low"),
    ("an unknown step option", {"name": "churn"},
     {"pipeline": {"steps": [{"name": "model", "estimator": "sklearn.svm.SVC",
                              "params": {"kernal": "rbf"}}]}},
     "objective.pipeline.steps[0].params.kernal"),
    ("estimator and pipeline both", {"name": "churn"}, {"estimator": "sklearn.svm.SVC"},
     "objective.estimator"),
    ("an unknown dataset", {"name": "nope"}, {}, "objective.dataset.name"),
    ("an unknown dataset id", {"id": 999_999}, {}, "objective.dataset.id"),
    ("a stale fingerprint", {"name": "churn", "sha256": "0" * 64}, {}, "objective.dataset.sha256"),
    ("too few rows for the folds", {"name": "churn"}, {"cv": {"type": "kfold", "n_splits": 500}},
     "objective.cv.n_splits"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "dataset", "objective", "field"), BAD_SPECS, ids=lambda v: v if isinstance(v, str) and " " in v else "")  # fmt: skip
def test_every_bad_dataset_or_pipeline_spec_is_a_4xx_naming_the_field_nothing_stored(
    client: TestClient,
    uploaded: dict[str, Any],
    case: str,
    dataset: dict[str, Any],
    objective: dict[str, Any],
    field: str,
) -> None:
    assert upload(client, b"a,b\n1,2\n3,4\n5,6\n", name="untargeted").status_code == 201
    r = client.post(f"{API}/studies", json=study("bad", dict(dataset), **dict(objective)))
    assert r.status_code == 422, f"{case}: {r.text}"
    assert r.json()["error"]["details"]["field"] == field, case
    assert r.json()["error"]["message"].startswith(f"{field}: ")
    assert client.get(f"{API}/studies").json()["studies"] == []


def test_a_dataset_in_use_cannot_be_deleted_then_goes_with_its_bytes(
    client: TestClient, uploaded: dict[str, Any]
) -> None:
    sid = client.post(f"{API}/studies", json=study("user", {"name": "churn"})).json()["id"]
    twin = upload(client, csv_bytes(table()), name="twin").json()  # the same bytes
    r = client.delete(f"{API}/datasets/{uploaded['id']}")
    assert r.status_code == 409 and r.json()["error"]["details"]["study_ids"] == [sid]
    assert client.delete(f"{API}/studies/{sid}").status_code == 204
    assert client.delete(f"{API}/datasets/{uploaded['id']}").status_code == 204
    assert client.get(f"{API}/datasets/{uploaded['id']}").status_code == 404
    # the twin shares the bytes: they stay until the last dataset naming them goes
    assert client.get(f"{API}/datasets/{twin['id']}/content").content == csv_bytes(table())
    assert client.delete(f"{API}/datasets/{twin['id']}").status_code == 204
    assert stored_files(client) == []


def test_a_worker_key_downloads_any_projects_dataset_other_projects_see_nothing(
    client: TestClient,
) -> None:
    from tuneforge.api.services import keys

    db = client.app.state.db  # type: ignore[attr-defined]
    for project in ("a", "b"):
        keys.create_project(db, project)
    editor_a = keys.create_key(db, "a", "editor")[1]
    viewer_b = keys.create_key(db, "b", "viewer")[1]
    worker = keys.create_key(db, None, "worker")[1]
    auth = {"Authorization": f"Bearer {editor_a}", **CSV}
    r = client.post(f"{API}/datasets", params={"name": "d"}, content=b"a,b\n1,2\n", headers=auth)
    assert r.status_code == 201 and r.json()["project"] == "a"
    ident = r.json()["id"]
    got = client.get(
        f"{API}/datasets/{ident}/content", headers={"Authorization": f"Bearer {worker}"}
    )
    assert got.status_code == 200 and got.content == b"a,b\n1,2\n"
    listed = client.get(f"{API}/datasets", headers={"Authorization": f"Bearer {worker}"})
    assert listed.status_code == 403
    other = {"Authorization": f"Bearer {viewer_b}"}
    assert client.get(f"{API}/datasets", headers=other).json()["datasets"] == []
    assert client.get(f"{API}/datasets/{ident}", headers=other).status_code == 404
