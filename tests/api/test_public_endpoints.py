"""Which of /metrics, /docs, /redoc and /openapi.json answer without a key
(``TUNEFORGE_PUBLIC_ENDPOINTS``), through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from tests.api.test_rate_limit import drop_keys
from tests.conftest import make_client
from tuneforge.api.services import keys as key_service
from tuneforge.api.settings import Settings

PATHS = {"metrics": "/metrics", "docs": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"}
ALWAYS = ("/healthz", "/readyz")


@pytest.fixture
def keyed_url(db_url: str) -> Iterator[str]:
    """``db_url``, left without keys afterwards."""
    yield db_url
    drop_keys(db_url)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_all_four_are_public_by_default(keyed_url: str) -> None:
    with make_client(keyed_url, reconcile_interval_seconds=0) as client:
        key_service.create_project(client.app.state.db, "a")  # type: ignore[attr-defined]
        key_service.create_key(client.app.state.db, "a", "viewer")  # type: ignore[attr-defined]
        for path in (*PATHS.values(), *ALWAYS):
            assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("public", ["", "metrics", "docs,redoc", "none"])
def test_the_others_need_a_key_of_any_role_once_keys_exist(keyed_url: str, public: str) -> None:
    settings = Settings(db_url=keyed_url, public_endpoints=public)  # as the variable reads
    open_names = set(settings.public_endpoints)
    with make_client(
        keyed_url, reconcile_interval_seconds=0, public_endpoints=settings.public_endpoints
    ) as client:
        # open mode (no key yet): everything answers
        for path in PATHS.values():
            assert client.get(path).status_code == 200, path
        db = client.app.state.db  # type: ignore[attr-defined]
        key_service.create_project(db, "a")
        viewer = key_service.create_key(db, "a", "viewer")[1]
        worker = key_service.create_key(db, None, "worker")[1]
        entry, revoked = key_service.create_key(db, "a", "admin")
        key_service.revoke_key(db, int(entry["id"]))
        for name, path in PATHS.items():
            anonymous = client.get(path)
            if name in open_names:
                assert anonymous.status_code == 200, path
                continue
            assert anonymous.status_code == 401, (path, anonymous.text)
            assert anonymous.headers["www-authenticate"] == "Bearer"
            assert anonymous.json()["error"]["code"] == "unauthorized"
            assert client.get(path, headers=bearer(revoked)).status_code == 401, path
            for key in (viewer, worker):
                assert client.get(path, headers=bearer(key)).status_code == 200, path
        for path in ALWAYS:
            assert client.get(path).status_code == 200, path


def test_an_unknown_name_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="unknown endpoint 'swagger'"):
        Settings(public_endpoints="metrics,swagger")
