"""Two server instances on one database behave like one (nothing lives only in memory)."""

from __future__ import annotations

from tests.conftest import make_client

API = "/api/v1"


def test_two_replicas_share_history_and_numbers(db_url: str) -> None:
    spec = {
        "name": "tiny",
        "parameters": [
            {"name": "a", "type": "categorical", "values": ["x", "y", "z"]},
            {"name": "b", "type": "int", "low": 0, "high": 1},
        ],
        "metrics": [{"name": "m", "goal": "minimize"}],
        "algorithm": "random",
        "max_trials": 6,
    }
    with (
        make_client(db_url, reconcile_interval_seconds=0) as one,
        make_client(db_url, reconcile_interval_seconds=0) as two,
    ):
        sid = one.post(f"{API}/studies", json=spec).json()["id"]
        seen = []
        for i in range(6):
            asker, finisher = (one, two) if i % 2 == 0 else (two, one)
            (trial,) = asker.post(f"{API}/studies/{sid}/trials/suggest", json={}).json()["trials"]
            r = finisher.post(
                f"{API}/studies/{sid}/trials/{trial['number']}/complete", json={"values": {"m": i}}
            )
            assert r.status_code == 200
            seen.append((trial["number"], tuple(sorted(trial["params"].items()))))
        assert [n for n, _ in seen] == list(range(6))
        assert len({p for _, p in seen}) == 6, "a replica proposed a point the other completed"
        assert one.get(f"{API}/studies/{sid}").json()["state"] == "completed"
        assert two.get(f"{API}/studies/{sid}/best").json()["trials"][0]["values"] == {"m": 0}
