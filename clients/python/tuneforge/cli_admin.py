"""``tuneforge projects|keys|audit``: the operator's commands for projects, API keys and
the audit log.

They work directly on the server's database (``--db`` / ``TUNEFORGE_DB_URL``, like
``tuneforge db upgrade``), so the first admin key can be made before any key
exists; the server is imported only when a command runs. ``tuneforge audit --url``
reads a running server instead, with an admin key. Failures end with a one-line
message: exit code 1 for a refused operation, 2 for a usage error.

:func:`register` adds the commands to the main ``tuneforge`` group.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click
import httpx

if TYPE_CHECKING:
    from tuneforge.api.db.engine import Database

DEFAULT_DB_URL = "sqlite:///./tuneforge.db"
ROLES = ("viewer", "editor", "admin", "worker")

F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_url",
        envvar="TUNEFORGE_DB_URL",
        help="The server's database URL (env TUNEFORGE_DB_URL; default sqlite:///./tuneforge.db).",
    )(func)


def format_option(func: F) -> F:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(("table", "json")),
        default="table",
        show_default=True,
        help="Output: a table or JSON.",
    )(func)


@contextmanager
def database(db_url: str | None) -> Iterator[Database]:
    """The server's database, checked to be at the current schema (the embedded default is
    migrated, as ``tuneforge serve`` does); server errors become one-line CLI errors."""
    from sqlalchemy.exc import SQLAlchemyError

    from tuneforge.api.db.engine import Database
    from tuneforge.api.db.migrate import SchemaOutdated, prepare_database
    from tuneforge.core.errors import TuneforgeError

    url = db_url or DEFAULT_DB_URL
    db: Database | None = None
    try:
        prepare_database(url, migrate=db_url is None)
        db = Database(url, pool_size=1)
        yield db
    except SchemaOutdated as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0]
        raise click.ClickException(f"cannot use database {url}: {reason}") from None
    except TuneforgeError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if db is not None:
            db.dispose()


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str) -> None:
    """Rows as JSON or as a plain aligned table (``-`` for empty cells)."""
    if fmt == "json":
        click.echo(json.dumps(list(rows), indent=2, ensure_ascii=False))
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    for line in [list(columns), *cells]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return str(value).replace("+00:00", "Z")


# ---------------------------------------------------------------- projects


@click.group()
def projects() -> None:
    """Create and list projects (studies and keys belong to one project)."""


@projects.command("create")
@click.argument("name")
@db_option
def projects_create(name: str, db_url: str | None) -> None:
    """Create the project NAME."""
    from tuneforge.api.services import keys

    with database(db_url) as db:
        project = keys.create_project(db, name)
    click.echo(f"project {project['name']} created (id {project['id']})")


@projects.command("list")
@db_option
@format_option
def projects_list(db_url: str | None, fmt: str) -> None:
    """List projects with their numbers of studies and active keys."""
    from tuneforge.api.services import keys

    with database(db_url) as db:
        rows = keys.list_projects(db)
    print_rows(rows, ("id", "name", "studies", "keys", "created_at"), fmt)


# ---------------------------------------------------------------- keys


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--project", default=None, help="The project the key acts in (not for worker).")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    required=True,
    help="viewer: read; editor: create studies, suggest, report; admin: also delete, "
    "evaluate and read the audit log; worker: run trials of every project (no --project).",
)
@db_option
def keys_create(project: str | None, role: str, db_url: str | None) -> None:
    """Create a key and print it once (only its hash is kept)."""
    from tuneforge.api.services import keys as service

    if role == "worker" and project is not None:
        raise click.UsageError("worker keys serve every project: give no --project")
    if role != "worker" and project is None:
        raise click.UsageError(f"{role} keys need --project")
    with database(db_url) as db:
        entry, key = service.create_key(db, project, role)
    scope = f"project {project}" if project is not None else "every project"
    click.echo(f"key {entry['id']}: {role} of {scope}. It is shown only now:", err=True)
    click.echo(key)
    click.echo(
        "Store it now (e.g. in TUNEFORGE_API_KEY): it is not shown again; "
        f"`tuneforge keys revoke {entry['id']}` disables it.",
        err=True,
    )


@keys.command("list")
@click.option("--project", default=None, help="Only this project's keys.")
@db_option
@format_option
def keys_list(project: str | None, db_url: str | None, fmt: str) -> None:
    """List keys (never the keys themselves): id, prefix, project, role, dates."""
    from tuneforge.api.services import keys as service

    with database(db_url) as db:
        rows = service.list_keys(db, project)
    columns = ("id", "prefix", "project", "role", "created_at", "last_used_at", "revoked_at")
    print_rows(rows, columns, fmt)


@keys.command("revoke")
@click.argument("key_id", type=click.IntRange(min=0, max=2**31 - 1), metavar="ID")
@db_option
def keys_revoke(key_id: int, db_url: str | None) -> None:
    """Revoke key ID: the server refuses it from the next request on."""
    from tuneforge.api.services import keys as service

    with database(db_url) as db:
        entry = service.revoke_key(db, key_id)
    click.echo(f"key {entry['id']} ({entry['prefix']}...) revoked at {entry['revoked_at']}")


# ---------------------------------------------------------------- audit

AUDIT_COLUMNS = ("id", "at", "key_id", "project", "method", "path", "status")


@click.command()
@click.option("--project", default=None, help="Only this project's entries (database mode).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="Read a running server's GET /api/v1/audit (needs an admin key) instead of --db.",
)
@click.option(
    "--api-key",
    envvar="TUNEFORGE_API_KEY",
    default=None,
    help="The admin key for --url (env TUNEFORGE_API_KEY).",
)
@db_option
@format_option
def audit(
    project: str | None,
    limit: int,
    url: str | None,
    api_key: str | None,
    db_url: str | None,
    fmt: str,
) -> None:
    """Show the newest mutating requests: who, what, when, with which result."""
    if url is not None:
        if project is not None:
            raise click.UsageError("--project is the key's own with --url; drop it")
        rows = _audit_over_http(url, api_key, limit)
    else:
        rows = _audit_from_db(db_url, project, limit)
    print_rows(rows, AUDIT_COLUMNS, fmt)


def _audit_from_db(db_url: str | None, project: str | None, limit: int) -> list[dict[str, Any]]:
    from tuneforge.api.services import audit as service
    from tuneforge.api.services import keys

    with database(db_url) as db:
        project_id = keys.project_id_of(db, project) if project is not None else None
        rows, _ = service.list_entries(db, project_id=project_id, before_id=None, page_size=limit)
    return rows


def _audit_over_http(url: str, api_key: str | None, limit: int) -> list[dict[str, Any]]:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    rows: list[dict[str, Any]] = []
    token: str | None = None
    base = url.rstrip("/").removesuffix("/api/v1") + "/api/v1/audit"
    try:
        with httpx.Client(headers=headers, timeout=30.0) as http:
            while len(rows) < limit:
                params: dict[str, Any] = {"page_size": min(limit - len(rows), 1000)}
                if token:
                    params["page_token"] = token
                reply = http.get(base, params=params)
                if reply.status_code != 200:
                    raise click.ClickException(_http_error(reply))
                page = reply.json()
                rows.extend(page["entries"])
                token = page.get("next_page_token")
                if not token:
                    break
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach tuneforge at {url}: {exc}") from None
    return rows[:limit]


def _http_error(reply: httpx.Response) -> str:
    try:
        message = reply.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = reply.text[:200]
    hint = " (set TUNEFORGE_API_KEY to an admin key)" if reply.status_code in (401, 403) else ""
    return f"{reply.status_code}: {message}{hint}".replace("\n", " ")


def register(main: click.Group) -> None:
    """Add ``projects``, ``keys`` and ``audit`` to the ``tuneforge`` command group."""
    main.add_command(projects)
    main.add_command(keys)
    main.add_command(audit)
