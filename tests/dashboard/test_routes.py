"""The dashboard's routes through the real app (no browser): the page and its assets are
public and self-contained, serve no data, and a keyed API still refuses requests without
a key."""

from __future__ import annotations

import re
from importlib.metadata import version

from fastapi.testclient import TestClient

from tests.conftest import make_client
from tests.specs import small_spec
from tuneforge.api import dashboard
from tuneforge.api.auth import PUBLIC_STATIC
from tuneforge.api.services import keys as key_service

ASSETS = dashboard.ASSETS
REMOTE = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)


def local_references(text: str) -> set[str]:
    """Asset names a page or script loads: src/href attributes and ES module imports."""
    found = re.findall(r"""(?:src|href)="([^"]+)"|from "\./([^"]+)\"""", text)
    names = set()
    for attr, module in found:
        ref = attr or module
        if ref.startswith(("#", "data:")):
            continue
        names.add(ref.split("?")[0].rsplit("/", 1)[-1])
    return names


def test_the_dashboard_routes_are_exactly_the_public_static_ones() -> None:
    paths = {getattr(route, "path", None) for route in dashboard.router.routes}
    assert paths == set(PUBLIC_STATIC)


def test_the_page_and_every_asset_it_loads_are_served_with_no_remote_url(sqlite_url: str) -> None:
    with make_client(sqlite_url, reconcile_interval_seconds=0) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "connect-src 'self'" in page.headers["content-security-policy"]
        seen: set[str] = set()
        todo = local_references(page.text)
        assert {"plotly.min.js", "app.js", "style.css"} <= todo
        while todo:
            name = todo.pop()
            seen.add(name)
            reply = client.get(f"{ASSETS}/{name}")
            assert reply.status_code == 200, (name, reply.text[:200])
            if name == dashboard.PLOTLY:
                assert reply.headers["cache-control"] == "public, max-age=604800"
                assert reply.headers["content-type"].startswith("text/javascript")
                continue
            assert not REMOTE.search(reply.text), f"{name} names a remote URL"
            todo |= local_references(reply.text) - seen
        assert not REMOTE.search(page.text)
        # every shipped file is reachable from the page (nothing dead in the wheel)
        assert dashboard.asset_names() <= seen
        assert f"plotly.min.js?v={version('plotly')}" in page.text


def test_unknown_assets_and_paths_outside_the_folder_are_404(sqlite_url: str) -> None:
    with make_client(sqlite_url, reconcile_interval_seconds=0) as client:
        for name in ("nope.js", "..%2Fdashboard.py", "index.html.bak", "%2E%2E%2Fauth.py"):
            reply = client.get(f"{ASSETS}/{name}")
            assert reply.status_code == 404, name
            assert reply.json()["error"]["code"] == "not_found"
        assert client.get(f"{ASSETS}/..%2F..%2Fpyproject.toml").status_code == 404


def test_with_api_keys_the_page_is_public_and_the_data_is_not(sqlite_url: str) -> None:
    with make_client(sqlite_url, reconcile_interval_seconds=0) as client:
        created = client.post("/api/v1/studies", json=small_spec("secret-study-name"))
        assert created.status_code == 201
        db = client.app.state.db  # type: ignore[attr-defined]
        key_service.create_project(db, "a")
        viewer = key_service.create_key(db, "a", "viewer")[1]
        page = client.get("/")
        assert page.status_code == 200 and "secret-study-name" not in page.text
        assert client.get(f"{ASSETS}/app.js").status_code == 200
        assert client.get(f"{ASSETS}/plotly.min.js").status_code == 200
        refused = client.get("/api/v1/studies")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        allowed = client.get("/api/v1/studies", headers={"Authorization": f"Bearer {viewer}"})
        assert allowed.status_code == 200


def test_the_page_works_without_a_key_in_open_mode(client: TestClient) -> None:
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/studies").status_code == 200
