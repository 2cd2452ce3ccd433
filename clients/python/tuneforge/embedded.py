"""Embedded mode: the tuneforge server on a local SQLite file, in a background thread.

The server (FastAPI, uvicorn, SQLAlchemy) is imported only when one starts,
so ``import tuneforge`` stays light.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client

DEFAULT_PATH = "tuneforge.db"


class EmbeddedServer:
    """``tuneforge serve`` on ``sqlite:///<path>`` and a free loopback port, in this process.

    The database is created and migrated on start. The server thread installs
    no signal handlers, so Ctrl-C still reaches the program's main thread.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_PATH) -> None:
        self.path = Path(path).resolve()
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.path}"

    def start(self, timeout: float = 30.0) -> EmbeddedServer:
        """Migrate the database, start serving and wait until the server accepts requests."""
        import uvicorn

        from tuneforge.api.app import create_app
        from tuneforge.api.db.migrate import prepare_database
        from tuneforge.api.settings import Settings

        prepare_database(self.db_url, migrate=True)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # accepted connections inherit it: replies are not held back by Nagle's
        # algorithm waiting for the client's delayed ACK (~40 ms per request otherwise)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        # It serves the user who started it (on 127.0.0.1): python objectives from any
        # module, data files under the working directory (docs/deploy.md, "Security").
        settings = Settings(db_url=self.db_url, migrate=False).for_local_user()
        app = create_app(settings)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"tuneforge-embedded-{port}",
            daemon=True,
        )
        self._thread.start()
        self._wait_started(timeout)
        self.url = f"http://127.0.0.1:{port}"
        atexit.register(self.stop)
        return self

    def _wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self._thread is not None
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the embedded tuneforge server on {self.path} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Finish in-flight requests and stop; safe to call more than once."""
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)
        self._server = None
        self._thread = None
        atexit.unregister(self.stop)

    def __repr__(self) -> str:
        return f"<EmbeddedServer {self.url or '(stopped)'} on {self.path}>"


@contextmanager
def local(path: str | os.PathLike[str] = DEFAULT_PATH, **options: Any) -> Iterator[Client]:
    """A :class:`~tuneforge.Client` on its own in-process server over the SQLite file ``path``.

    ``options`` go to the client (``timeout``, ``retry``, ``client_id``). The
    server stops when the block ends::

        with tuneforge.local("runs.db") as client:
            study = client.create_study(...)
    """
    from .client import Client

    server = EmbeddedServer(path).start()
    try:
        client = Client(server.url, **options)
    except BaseException:
        server.stop()
        raise
    client._adopt(server)
    try:
        yield client
    finally:
        client.close()
