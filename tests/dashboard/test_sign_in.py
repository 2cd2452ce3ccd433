"""A server with API keys: the dashboard asks for a key, shows nothing before one is
accepted, keeps it in the tab's sessionStorage, sends it as a Bearer token, and shows the
API's refusals (a viewer cannot pause a study)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.dashboard import seed
from tests.dashboard.conftest import VIEWPORT, Page, start_server
from tests.specs import small_spec
from tuneforge.api.db.engine import Database
from tuneforge.api.services import keys as key_service


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    server = start_server(tmp_path)
    try:
        db = Database(server.db_url, pool_size=1)
        key_service.create_project(db, "team")
        keys = {role: key_service.create_key(db, "team", role)[1] for role in ("viewer", "editor")}
        db.dispose()
        yield server, keys
    finally:
        server.stop()


def test_a_keyed_server_asks_for_a_key_and_shows_nothing_without_one(
    browser: Any, keyed: tuple[LiveServer, dict[str, str]], tmp_path: Path
) -> None:
    server, keys = keyed
    editor = {"Authorization": f"Bearer {keys['editor']}"}
    with httpx.Client(base_url=server.url, headers=editor) as api:
        study = seed.create(api, small_spec("keyed-secret-study"))
        assert httpx.get(f"{server.url}{seed.API}/studies").status_code == 401
    context = browser.new_context(viewport=VIEWPORT)
    page = Page(context.new_page(), server.url)
    p = page.page
    try:
        p.goto(f"{server.url}/#/study/{study}")
        p.wait_for_selector("#sign-in[open]")
        assert "keyed-secret-study" not in p.content()
        assert p.is_hidden("#sign-in-error")
        page.screenshot(tmp_path, "sign-in")

        p.fill("#api-key", "tf_0_not-a-real-key")
        p.click("#sign-in-submit")
        p.wait_for_selector("#sign-in-error:not([hidden])")
        assert "not valid" in p.inner_text("#sign-in-error")
        assert p.evaluate("sessionStorage.getItem('tuneforge.apiKey')") is None
        assert "keyed-secret-study" not in p.content()

        p.fill("#api-key", keys["viewer"])
        p.click("#sign-in-submit")
        p.wait_for_selector("body[data-loaded='true']")
        assert p.inner_text(".study-head h1") == "keyed-secret-study"
        assert p.evaluate("sessionStorage.getItem('tuneforge.apiKey')") == keys["viewer"]

        p.click("#pause-study")  # a viewer may read, not change
        p.wait_for_selector("#toast.error")
        assert "a viewer key may not call PATCH" in p.inner_text("#toast")

        p.goto(f"{server.url}/#/")  # the key lasts for the tab: no new prompt
        p.wait_for_selector("body[data-loaded='true']")
        assert "keyed-secret-study" in p.inner_text("#studies-table")
        p.click("#sign-out")
        p.wait_for_selector("#sign-in[open]")
        assert p.evaluate("sessionStorage.getItem('tuneforge.apiKey')") is None
    finally:
        context.close()
    assert not page.errors, page.errors
