"""The FastAPI application factory. Importing this module does no work."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from .. import __version__
from .auth import authorize, install_auth
from .db.engine import Database
from .db.migrate import prepare_database
from .errors import install_error_handlers
from .limits import BodySizeLimit
from .metrics import Metrics
from .queue import CeleryQueue
from .routes import audit, keys, nested, ops, studies, trials
from .scheduler import Reconciler
from .settings import Settings

API_PREFIX = "/api/v1"
_frozen = False


def freeze_startup_objects() -> None:
    """Move everything alive after startup (modules, classes, the numeric stack: several
    hundred thousand objects) out of the garbage collector's view.

    Full collections otherwise walk them again and again, and one landing inside a
    request added 10-20 ms to a suggest call; objects created later are collected as usual.
    """
    global _frozen
    if not _frozen:  # once per process: later apps (tests, embedded clients) add nothing new
        _frozen = True
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings``; the database is checked when the app starts."""
    settings = settings or Settings()
    db = Database(settings.db_url, pool_size=settings.db_pool_size)
    queue = CeleryQueue(settings.broker_url) if settings.broker_url else None
    reconciler = Reconciler(db, settings, queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prepare_database(settings.db_url, migrate=settings.migrate)
        freeze_startup_objects()
        reconciler.start()
        try:
            yield
        finally:
            reconciler.stop()
            db.dispose()

    app = FastAPI(
        title="tuneforge",
        version=__version__,
        description="Hyperparameter tuning service: studies, trials, suggestions, early stopping.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.reconciler = reconciler
    app.state.metrics = Metrics()
    install_error_handlers(app)
    install_auth(app)
    app.middleware("http")(app.state.metrics.middleware)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(ops.router)
    keyed = [Depends(authorize)]  # every /api/v1 route: key, role, project (api/auth.py)
    app.include_router(studies.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(trials.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(nested.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(audit.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(keys.router, prefix=API_PREFIX, dependencies=keyed)
    return app
