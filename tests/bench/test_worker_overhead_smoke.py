"""The worker-overhead benchmark's table and study are what it claims (no services):
the generated table has the kinds it describes and the spec passes the server's checks."""

from __future__ import annotations

import io

from bench.worker_overhead import generated, spec
from tests.conftest import make_client


def test_the_benchmarks_table_uploads_and_its_study_is_accepted(sqlite_url: str) -> None:
    frame = generated(2_000)
    assert frame.shape == (2_000, 12)
    body = io.BytesIO()
    frame.to_csv(body, index=False)
    with make_client(sqlite_url, reconcile_interval_seconds=0) as client:
        name = "overhead-smoke"
        r = client.post(
            "/api/v1/datasets",
            params={"name": name, "target": "churned"},
            content=body.getvalue(),
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 201, r.text
        kinds = {c["name"]: c["kind"] for c in r.json()["columns"]}
        assert [kinds[f"x{i}"] for i in range(8)] == ["numeric"] * 8
        assert {kinds[c] for c in ("plan", "region", "channel", "churned")} == {"categorical"}
        created = client.post("/api/v1/studies", json=spec(name, 6))
        assert created.status_code == 201, created.text
