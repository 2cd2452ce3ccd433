"""The ``tuneforge`` command line.

Sub-commands that run a server import the server lazily, so the SDK itself
stays light (httpx + pydantic).
"""

from __future__ import annotations

import os
import sys

import click

from .cli_connect import add_api_key, check_url
from .cli_errors import CliGroup

DEFAULT_DB_URL = "sqlite:///./tuneforge.db"
#: Seconds a ``serve --workers N`` worker may take to answer uvicorn's health ping.
WORKER_HEALTHCHECK_SECONDS = 30


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tuneforge")
def main() -> None:
    """tuneforge: hyperparameter tuning as a service.

    Errors are one line; --debug (on any command) or TUNEFORGE_DEBUG=1 adds the traceback.
    """


db_option = click.option(
    "--db",
    "db_url",
    envvar="TUNEFORGE_DB_URL",
    help="Database URL: sqlite:///path.db or postgresql://user@host/db "
    "(env TUNEFORGE_DB_URL; default sqlite:///./tuneforge.db).",
)


@main.command()
@db_option
@click.option("--host", envvar="TUNEFORGE_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="TUNEFORGE_PORT", default=8000, type=int, show_default=True)
@click.option(
    "--migrate/--no-migrate",
    default=None,
    help="Upgrade the database schema at start (default: only for the embedded SQLite default).",
)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--insecure",
    is_flag=True,
    help="Listen beyond loopback even though no API key exists (anyone reaching it has "
    "full access).",
)
@click.option(
    "--workers",
    default=1,
    type=click.IntRange(min=1),
    show_default=True,
    help="Server processes sharing the port (uvicorn workers); each is a full replica.",
)
def serve(
    db_url: str | None,
    host: str,
    port: int,
    migrate: bool | None,
    log_level: str,
    insecure: bool,
    workers: int,
) -> None:
    """Run the API server."""
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from tuneforge.api.app import create_app
    from tuneforge.api.auth import Exposed, check_exposure
    from tuneforge.api.db.migrate import SchemaOutdated, prepare_database
    from tuneforge.api.settings import Settings

    embedded_default = db_url is None
    settings = Settings(
        db_url=db_url or DEFAULT_DB_URL,
        host=host,
        port=port,
        migrate=embedded_default if migrate is None else migrate,
        log_level=log_level,
    )
    _check_port(host, port)
    try:
        prepare_database(settings.db_url, migrate=settings.migrate)
        mode = check_exposure(settings, insecure=insecure)
    except (SchemaOutdated, Exposed) as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot open database {settings.db_url}: {exc}") from None
    click.echo(f"tuneforge serving on http://{host}:{port} (database {settings.db_url})", err=True)
    click.echo(mode, err=True)
    if workers > 1:  # each worker process builds its app from these settings' variables
        os.environ.update(
            TUNEFORGE_DB_URL=settings.db_url, TUNEFORGE_MIGRATE="false", TUNEFORGE_PORT=str(port)
        )
        os.environ.update(TUNEFORGE_HOST=host, TUNEFORGE_LOG_LEVEL=log_level)
        uvicorn.run(
            "tuneforge.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            log_level=log_level,
            workers=workers,
            # uvicorn kills a worker that does not answer its health ping in time; the
            # ping's thread competes for the interpreter lock with the requests, so a
            # worker busy with a team's load can miss uvicorn's default 5 s. A hung
            # worker still goes after this long.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        )
        return
    uvicorn.run(
        create_app(settings.model_copy(update={"migrate": False})),
        host=host,
        port=port,
        log_level=log_level,
    )


def _check_port(host: str, port: int) -> None:
    """Fail with one line, before anything starts, when ``host:port`` cannot be listened on."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(is another server running there? choose another --port)"
        ) from None


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@db_option
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(db_url: str | None, revision: str) -> None:
    """Upgrade the database schema to the newest (or the given) revision."""
    from sqlalchemy.exc import SQLAlchemyError

    from tuneforge.api.db.migrate import upgrade

    url = db_url or DEFAULT_DB_URL
    try:
        upgrade(url, revision)
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"cannot upgrade {url}: {exc.__class__.__name__}: {exc}"
        ) from None
    click.echo(f"database {url} is at revision {revision}")


@main.command()
@click.option(
    "--concurrency", "-c", default=None, type=int, help="Training processes (default: cores)."
)
@click.option(
    "--server",
    "server_url",
    envvar="TUNEFORGE_SERVER_URL",
    default=None,
    callback=check_url,
    metavar="URL",
    help="tuneforge server URL (env TUNEFORGE_SERVER_URL).",
)
@click.option(
    "--broker",
    "broker_url",
    envvar="TUNEFORGE_BROKER_URL",
    default=None,
    help="Celery broker URL (env TUNEFORGE_BROKER_URL; default redis://127.0.0.1:6379/0).",
)
@click.option("--loglevel", default="info", show_default=True)
@click.option("--hostname", default=None, help="Celery node name (default tuneforge@<host>-<pid>).")
def worker(
    concurrency: int | None,
    server_url: str | None,
    broker_url: str | None,
    loglevel: str,
    hostname: str | None,
) -> None:
    """Run a Celery worker that trains the trials of managed studies."""
    from tuneforge.worker.celery_app import create_celery
    from tuneforge.worker.settings import WorkerSettings

    settings = WorkerSettings()
    if server_url:
        settings.server_url = server_url
    if broker_url:
        settings.broker_url = broker_url
    app = create_celery(settings)
    argv = ["worker", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    argv.append(f"--hostname={hostname or f'tuneforge@%h-{os.getpid()}'}")
    click.echo(
        f"tuneforge worker: server {settings.server_url}, broker {settings.broker_url}", err=True
    )
    app.worker_main(argv)


from .cli_run import register as _register_run  # noqa: E402

_register_run(main)

from .cli_studies import register as _register_studies  # noqa: E402

_register_studies(main)

from .cli_datasets import register as _register_datasets  # noqa: E402

_register_datasets(main)

from .cli_admin import register as _register_admin  # noqa: E402

_register_admin(main)

from .cli_analysis import register as _register_analysis  # noqa: E402

_register_analysis(main)
main.add_debug()
add_api_key(main)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
