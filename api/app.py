"""The FastAPI application factory. Importing this module does no work."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from .. import __version__
from . import threads
from .auth import authorize_route, install_auth
from .dashboard import router as dashboard_router
from .db.engine import Database
from .db.migrate import prepare_database
from .errors import install_error_handlers
from .hot_routes import install_hot_routes
from .limits import BodySizeLimit
from .logs import RequestIdMiddleware, configure_logging
from .metrics import Metrics, MetricsMiddleware
from .openapi import install_openapi, operation_id
from .queue import CeleryQueue
from .routes import analysis, audit, checkpoints, datasets, keys, nested, ops, studies, trials
from .scheduler import Reconciler
from .services import fit_pool, suggest_spare
from .settings import Settings
from .text_guard import TextGuard

API_PREFIX = "/api/v1"
#: Where the Swagger UI and ReDoc assets (shipped in the fastapi-offline wheel) are served.
DOCS_ASSETS = "/docs-assets"
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


DESCRIPTION = """Hyperparameter tuning service: studies, trials, suggestions, early stopping.

Every error answers `{"error": {"code", "message", "details"}}` (the `ErrorBody` schema);
the message starts with the offending field. Operation ids are stable camelCase names
(`createStudy`, `suggestTrials`, `reportMeasurement`, `completeTrial`, ...), fit for
generating a client. The user guide is docs/api.md in the repository.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings``; the database is checked when the app starts."""
    settings = settings or Settings()
    db = Database(settings.db_url, pool_size=settings.db_pool_size)
    queue = CeleryQueue(settings.broker_url) if settings.broker_url else None
    reconciler = Reconciler(db, settings, queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_format, settings.log_level)
        prepare_database(settings.db_url, migrate=settings.migrate)
        fit_pool.configure(settings.fit_processes)
        suggest_spare.configure(settings.spare_points)
        freeze_startup_objects()
        threads.configure(app, settings.threads)
        reconciler.start()
        try:
            yield
        finally:
            reconciler.stop()
            fit_pool.shutdown()
            db.dispose()

    # Swagger UI at /docs and ReDoc at /redoc load their scripts from this server, not a CDN.
    app = FastAPIOffline(
        title="tuneforge",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
        generate_unique_id_function=operation_id,
        separate_input_output_schemas=False,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
    )
    app.state.settings = settings
    app.state.db = db
    app.state.reconciler = reconciler
    app.state.metrics = Metrics(db)
    install_openapi(app)
    install_error_handlers(app)
    install_auth(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(TextGuard)  # inside the size limit: it reads the counted body
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        streamed=[
            (checkpoints.CHECKPOINT_PATH, settings.max_checkpoint_bytes),
            (datasets.UPLOAD_PATH, settings.max_dataset_bytes),
        ],
    )
    app.add_middleware(RequestIdMiddleware)  # outermost: every reply carries X-Request-ID
    app.include_router(ops.router)
    keyed = [Depends(authorize_route)]  # every /api/v1 route: key, role, project (api/auth.py)
    app.include_router(studies.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(trials.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(checkpoints.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(nested.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(analysis.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(datasets.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(audit.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(keys.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(dashboard_router)  # the web UI at /: public assets, data via /api/v1
    if settings.hot_routes:
        install_hot_routes(app)  # ahead of the routes above, for the same paths
    return app
