"""Browser tests of the dashboard: the real app (``tuneforge serve``, uvicorn) on a free
port, seeded through the REST API, and Debian's Chromium driven by Playwright.

One server and one browser per session; each test gets a fresh browser context. When
Chromium or Playwright is missing the tests fail in CI (``CI=true``) and are skipped,
with the reason, on a laptop (``apt-get install chromium``; ``pip install -e .[dev]``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, service_missing
from tests.dashboard import seed
from tuneforge.api.db.migrate import upgrade

CHROMIUM = os.environ.get("TUNEFORGE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 1000}


def require_chromium() -> None:
    """Fail in CI, skip elsewhere, when Chromium or Playwright is missing."""
    if not Path(CHROMIUM).is_file():
        service_missing("Chromium", FileNotFoundError(f"{CHROMIUM} (apt-get install chromium)"))
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        service_missing("Playwright", exc)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Chromium for the dashboard tests. Package-scoped: Playwright's sync API
    keeps an asyncio loop running in this thread while it is open, and tests after this
    package (the async SDK's ``asyncio.run``) need the thread's loop gone."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def start_server(directory: Path) -> LiveServer:
    url = f"sqlite:///{directory / 'dashboard.db'}"
    upgrade(url)
    return LiveServer(url).start()


@dataclass
class Seeded:
    """The live server, an HTTP client on it and the seeded studies' ids."""

    server: LiveServer
    api: httpx.Client
    asha: int
    plain: int
    pareto: int


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    server = start_server(tmp_path_factory.mktemp("dashboard"))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            plain = seed.plain_study(api, n=60)
            seed.store_evaluation(api, plain, cv=0.9321, test=0.9105)
            yield Seeded(server, api, seed.asha_study(api), plain, seed.pareto_study(api))
    finally:
        server.stop()


#: A plot div is drawn and current: plotly's data is on it (or it is hidden with a note
#: saying why it is empty) and it is not waiting to be redrawn.
DRAWN = """id => {
  const d = document.getElementById(id);
  return d && d.dataset.dirty !== "1" && (d.data || d.hidden);
}"""


class Page:
    """A browser page on the dashboard that records the page's script errors."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, route: str = "#/") -> Any:
        """Load the dashboard at ``route`` and wait until the page has its data."""
        self.page.goto(f"{self.base_url}/{route}")
        self.page.wait_for_selector("body[data-loaded='true']", timeout=20_000)
        return self.page

    def show(self, element_id: str) -> None:
        """Scroll the plot ``element_id`` on screen and wait until it is drawn and current
        (figures are drawn when on screen; ``data-dirty`` is 1 while one is out of date)."""
        self.page.evaluate(
            "id => document.getElementById(id).closest('section').scrollIntoView()", element_id
        )
        self.page.wait_for_function(DRAWN, arg=element_id, timeout=20_000)

    def plot(self, element_id: str) -> list[dict[str, Any]]:
        """The traces plotly drew in the div ``element_id`` (its ``data``)."""
        self.show(element_id)
        data = self.page.evaluate("id => document.getElementById(id).data || null", element_id)
        assert data is not None, f"#{element_id} has no plot"
        return list(data)

    def screenshot(self, folder: Path, name: str, plot: str | None = None) -> Path:
        """A screenshot of the card of the figure ``plot``, or of the whole page once every
        figure is drawn."""
        path = folder / f"{name}.png"
        if plot is not None:
            self.show(plot)
            self.page.locator(f"section:has(#{plot})").screenshot(path=str(path))
            assert path.stat().st_size > 5_000, f"{path} looks empty"
            return path
        for element_id in self.page.evaluate(
            "[...document.querySelectorAll('.plot')].map(d => d.id)"
        ):
            self.show(element_id)
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, f"{path} looks empty"
        return path


@pytest.fixture
def page(browser: Any, seeded: Seeded) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    wrapped = Page(context.new_page(), seeded.server.url)
    try:
        yield wrapped
    finally:
        context.close()
    assert not wrapped.errors, f"script errors on the page: {wrapped.errors}"


def trace(traces: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [t for t in traces if t.get("name") == name]
    assert len(found) == 1, f"no single trace named {name!r} in {[t.get('name') for t in traces]}"
    return found[0]


def points(t: dict[str, Any]) -> int:
    """How many points a trace draws (gaps between lines are nulls and do not count)."""
    return sum(1 for v in t["y"] if v is not None)
