"""Who may call what: API keys, roles per project, and the server's exposure check.

Every ``/api/v1`` route runs :func:`authorize` (added once, where the routers are
included, as :func:`authorize_route`; the hot trial calls of :data:`ON_WORK_THREAD` run
it on their work's thread, and a request refused there hears so before any complaint
about its body), which

1. authenticates the ``Authorization: Bearer <key>`` header (401 with a
   ``WWW-Authenticate: Bearer`` header when it is missing, garbled or revoked);
2. looks the role the route needs up in :data:`ROUTE_ROLES`, keyed by method and
   route template (403 when the key's role is lower; a route missing from the
   table needs ``admin``, and a test fails for it);
3. for routes with ``{study_id}``, checks that the study belongs to the key's project
   (read with the key, in one short read per request), and answers exactly like an
   unknown id (404) when it does not, so names and existence never leak between
   projects.

The principal lands on ``request.state.principal``; :data:`CurrentProject` gives
routes the project that new studies belong to and lists are filtered by.

Once the caller is known, :func:`authorize` takes a token from its rate-limit bucket
(:mod:`tuneforge.api.rate_limit`): per key (``worker`` keys are not limited), per
client address for requests whose key fails and in open mode beyond loopback.
:class:`PublicEndpoints` asks for a key of any role on ``/metrics``, ``/docs``,
``/redoc`` and ``/openapi.json`` unless ``TUNEFORGE_PUBLIC_ENDPOINTS`` names them.
The dashboard's page and assets (:data:`PUBLIC_STATIC`) are public: they hold no data.

Modes: while no key exists the server is *open* (the embedded default): every
request acts as an admin of no particular project (new studies go to the default
project, lists show everything) and any ``Authorization`` header is ignored. Once
a key exists (revoked ones count) every request needs a valid one. Keys travel
only in the ``Authorization`` header, never in URLs, so access logs never show them.
"""

from __future__ import annotations

import inspect
import ipaddress
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import make_url
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ..core.errors import NotFound
from .db.engine import Database
from .errors import error_response
from .rate_limit import RateLimited, RateLimiter
from .routes.deps import MAX_ID
from .services.keys import Role, any_key_exists, look_up
from .settings import Settings

API_PREFIX = "/api/v1"
V, E, A = Role.VIEWER, Role.EDITOR, Role.ADMIN
_S = "/api/v1/studies/{study_id}"
_T = "/api/v1/studies/{study_id}/trials/{number}"
_D = "/api/v1/datasets"

#: The lowest role each route needs, by (method, route template).
ROUTE_ROLES: dict[tuple[str, str], Role] = {
    ("GET", "/api/v1/studies"): V,
    ("POST", "/api/v1/studies"): E,
    ("GET", _S): V,
    ("PATCH", _S): E,
    ("DELETE", _S): A,
    ("POST", f"{_S}/run"): E,
    ("POST", f"{_S}/evaluate"): A,
    ("PUT", f"{_S}/evaluation"): A,
    ("GET", f"{_S}/best"): V,
    ("GET", f"{_S}/importance"): V,
    ("GET", f"{_S}/hypervolume"): V,
    ("GET", f"{_S}/warm-start"): V,
    ("GET", f"{_S}/trials"): V,
    ("POST", f"{_S}/trials"): E,
    ("POST", f"{_S}/trials/suggest"): E,
    ("GET", _T): V,
    ("POST", f"{_T}/measurements"): E,
    ("POST", f"{_T}/heartbeat"): E,
    ("POST", f"{_T}/complete"): E,
    ("POST", f"{_T}/fail"): E,
    ("POST", f"{_T}/stop"): E,
    ("PUT", f"{_T}/checkpoint"): E,
    ("GET", f"{_T}/checkpoint"): V,
    ("GET", _D): V,
    ("POST", _D): E,
    ("GET", f"{_D}/{{dataset_id}}"): V,
    ("GET", f"{_D}/{{dataset_id}}/content"): V,
    ("DELETE", f"{_D}/{{dataset_id}}"): A,
    ("POST", "/api/v1/nested-cv"): E,
    ("GET", "/api/v1/nested-cv/{group}"): V,
    ("GET", "/api/v1/audit"): A,
    ("GET", "/api/v1/keys"): A,
    ("POST", "/api/v1/keys"): A,
    ("DELETE", "/api/v1/keys/{key_id}"): A,
}

#: What a ``worker`` key (shared Celery workers, no project) may do, on any project's study:
#: read the study, run its trials, store its held-out evaluation, download the uploaded
#: dataset it trains on. Nothing else.
WORKER_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", _S),
        ("GET", f"{_S}/best"),
        ("PUT", f"{_S}/evaluation"),
        ("GET", f"{_S}/trials"),
        ("POST", f"{_S}/trials/suggest"),
        ("GET", _T),
        ("POST", f"{_T}/measurements"),
        ("POST", f"{_T}/heartbeat"),
        ("POST", f"{_T}/complete"),
        ("POST", f"{_T}/fail"),
        ("PUT", f"{_T}/checkpoint"),
        ("GET", f"{_T}/checkpoint"),
        ("GET", f"{_D}/{{dataset_id}}/content"),
    }
)
RANK = {V: 1, E: 2, A: 3}


class AuthError(Exception):
    """401 (no valid key) or 403 (a valid key whose role is too low)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key (None in open mode), its project (None: every project) and role."""

    key_id: int | None
    project_id: int | None
    role: Role

    def allows(self, method: str, template: str) -> bool:
        """Whether this role may call the route ``method template``."""
        if self.role == Role.WORKER:
            return (method, template) in WORKER_ROUTES
        return RANK[self.role] >= RANK[required_role(method, template)]


OPEN = Principal(key_id=None, project_id=None, role=Role.ADMIN)


def required_role(method: str, template: str) -> Role:
    """The role a route needs; ``admin`` for a route the table does not name."""
    return ROUTE_ROLES.get((method, template), A)


def authorize(request: Request) -> Principal:
    """The router dependency: authenticate, check the role, keep studies in their project."""
    db: Database = request.app.state.db
    study_id = _study_id(request)
    principal, owner = _authenticate_limited(request, db, study_id)
    request.state.principal = principal
    template = route_template(request.scope)
    if not principal.allows(request.method, template):
        raise AuthError(403, _denied(principal.role, request.method, template))
    if study_id is not None:
        if owner is None or (principal.project_id is not None and owner != principal.project_id):
            raise NotFound(f"study {study_id} does not exist", field="study_id")
        request.state.study_project = owner
    return principal


def route_template(scope: Scope) -> str:
    """The matched route's template with the API prefix (``/api/v1/studies/{study_id}``).

    Depending on the FastAPI version, ``scope["route"]`` of an included router's route
    carries the include prefix or not; every route this module guards lives under it.
    """
    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str):
        return "unmatched"
    return path if path.startswith(API_PREFIX + "/") else API_PREFIX + path


def _denied(role: Role, method: str, template: str) -> str:
    if role == Role.WORKER:
        return f"a worker key may not call {method} {template} (only running trials)"
    needed = required_role(method, template).value
    return f"a {role.value} key may not call {method} {template} (needs {needed})"


def _authenticate(
    request: Request, db: Database, study_id: int | None = None
) -> tuple[Principal, int | None]:
    """The caller, and the project of ``study_id`` (None: no such study), from one read."""
    state = request.app.state
    header = request.headers.get("authorization")
    scheme, _, key = (header or "").partition(" ")
    presented = key.strip() if scheme.lower() == "bearer" and key.strip() else None
    known_keyed = bool(getattr(state, "auth_secured", False))
    caller = look_up(db, presented, study_id, check_keyed=not known_keyed)
    if not (known_keyed or caller.keyed):
        return OPEN, caller.study_project
    state.auth_secured = True  # once keyed, always keyed: keys are never deleted
    if not header:
        raise AuthError(401, "an API key is required: send Authorization: Bearer <key>")
    if presented is None:
        raise AuthError(401, "the Authorization header must read: Bearer <key>")
    if caller.key is None:
        raise AuthError(401, "the API key is not valid (unknown, mistyped or revoked)")
    info = caller.key
    return Principal(
        key_id=info.id, project_id=info.project_id, role=info.role
    ), caller.study_project


def _authenticate_limited(
    request: Request, db: Database, study_id: int | None
) -> tuple[Principal, int | None]:
    """:func:`_authenticate`, then a token from the caller's bucket: the key's (none for
    worker keys); the client address's when authentication fails (429 then comes before
    the 401, so guessing keys is limited too) and in open mode on a non-loopback address
    (``--insecure``; open mode on loopback serves its own machine and is not limited)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    try:
        principal, owner = _authenticate(request, db, study_id)
    except AuthError:
        if limiter is not None:
            limiter.take(f"address {client_address(request)}", "client address")
        raise
    if limiter is None or principal.role == Role.WORKER:
        return principal, owner
    if principal.key_id is not None:
        limiter.take(f"key {principal.key_id}", "API key")
    elif not is_loopback(request.app.state.settings.host):  # open mode and --insecure
        limiter.take(f"address {client_address(request)}", "client address")
    return principal, owner


def client_address(request: Request) -> str:
    """The peer's address as the server sees it (a proxy's own when behind one)."""
    return request.client.host if request.client is not None else "unknown"


def _study_id(request: Request) -> int | None:
    raw = request.path_params.get("study_id")
    if not isinstance(raw, str) or not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        return None  # the route's own validation answers 422
    value = int(raw)
    return value if value <= MAX_ID else None


#: The hot trial calls, made by workers several times per trial: their authorization
#: runs on the thread that does their work (:func:`authorize_here`, called by
#: api/threads.py before the work), not on a thread of its own first: the same checks
#: and the same read, one hand-over between the event loop and a thread fewer per call
#: (docs/performance.md, run Q). Each of these routes must run its work through
#: api/threads.py; ``tests/api/test_auth_on_work_thread.py`` checks that every one still
#: refuses, before judging the body, and hands over once.
ON_WORK_THREAD: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", _S + "/trials/suggest"),
        ("POST", _T + "/measurements"),
        ("POST", _T + "/heartbeat"),
        ("POST", _T + "/complete"),
        ("POST", _T + "/fail"),
    }
)


async def authorize_route(request: Request) -> Principal | None:
    """The router dependency: :func:`authorize` on a thread of the default pool, or, for
    a route of :data:`ON_WORK_THREAD`, marked pending (None) for :func:`authorize_here`."""
    if (request.method, route_template(request.scope)) in ON_WORK_THREAD:
        request.state.authorize_pending = True
        return None
    return await run_in_threadpool(authorize, request)


def authorize_here(request: Request) -> None:
    """The request's pending authorization (:func:`authorize_route`), on this thread;
    nothing when none is pending. Raises what :func:`authorize` raises."""
    if getattr(request.state, "authorize_pending", False):
        request.state.authorize_pending = False
        authorize(request)


async def _pending_refusal(request: Request) -> Response | None:
    """The answer of a pending authorization that refuses (401, 403, 404, 429), else
    None: a refused caller hears that before anything about its request's body."""
    if not getattr(request.state, "authorize_pending", False):
        return None
    try:
        await run_in_threadpool(authorize_here, request)
    except Exception as exc:  # answered by the app's handler for it, as if raised in a route
        handler = next(
            (
                request.app.exception_handlers[kind]
                for kind in type(exc).__mro__
                if kind in request.app.exception_handlers
            ),
            None,
        )
        if handler is None:
            raise
        return await _answer(handler, request, exc)
    return None


async def _answer(handler: Any, request: Request, exc: Exception) -> Response:
    """What an exception handler of the app (sync or async) answers for ``exc``."""
    answer = handler(request, exc)
    result: Response = await answer if inspect.isawaitable(answer) else answer
    return result


async def current_project(
    principal: Annotated[Principal | None, Depends(authorize_route)],
) -> int | None:
    """The caller's project (None in open mode: the default project, lists unfiltered).
    No route of :data:`ON_WORK_THREAD` takes it: their principal is only known on the
    work's thread."""
    assert principal is not None, "CurrentProject on a route of ON_WORK_THREAD"
    return principal.project_id


#: A route parameter: the project new studies go to and lists are filtered by.
CurrentProject = Annotated[int | None, Depends(current_project)]


async def _auth_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)
    code = "unauthorized" if exc.status == 401 else "forbidden"
    response = error_response(exc.status, code, exc.message)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _rate_limited(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    details = {"retry_after": exc.retry_after}
    headers = {"Retry-After": str(exc.retry_after)}
    return error_response(429, "rate_limited", str(exc), details, headers=headers)


def install_auth(app: FastAPI) -> None:
    """Answer :class:`AuthError` and :class:`RateLimited` with the API error body, keep
    the rate limiter of ``app.state.settings``, guard the endpoints that are not public
    and record mutating requests."""
    from .audit import AuditLog

    settings: Settings = app.state.settings
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(RateLimited, _rate_limited)
    invalid = app.exception_handlers[RequestValidationError]  # api/errors.py's, installed first

    async def refused_first(request: Request, exc: Exception) -> Response:
        refusal = await _pending_refusal(request)
        return refusal if refusal is not None else await _answer(invalid, request, exc)

    app.add_exception_handler(RequestValidationError, refused_first)
    guarded = frozenset(
        path
        for name, paths in GUARDABLE.items()
        if name not in settings.public_endpoints
        for path in paths
    )
    if guarded:
        app.add_middleware(PublicEndpoints, guarded=guarded)
    app.add_middleware(AuditLog, db=app.state.db)


#: Routes outside /api/v1 that are public in every mode: the dashboard's page and its static
#: assets (api/dashboard.py). They carry no data: the page reads /api/v1 with the user's key
#: like any client, so on a keyed server it shows nothing but a sign-in box without one.
PUBLIC_STATIC: tuple[str, ...] = ("/", "/dashboard/assets/{name}")

#: The endpoints outside /api/v1 that ``TUNEFORGE_PUBLIC_ENDPOINTS`` names, and their paths.
GUARDABLE: dict[str, tuple[str, ...]] = {
    "metrics": ("/metrics",),
    "docs": ("/docs", "/docs/oauth2-redirect"),
    "redoc": ("/redoc",),
    "openapi": ("/openapi.json",),
}


class PublicEndpoints:
    """Asks for a valid key of any role on the ``guarded`` paths once the server has keys
    (401 like an /api/v1 route); in open mode they stay reachable."""

    def __init__(self, app: ASGIApp, guarded: frozenset[str]) -> None:
        self.app = app
        self.guarded = guarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.guarded:
            request = Request(scope)
            try:
                await run_in_threadpool(_authenticate, request, request.app.state.db)
            except AuthError as exc:
                response = await _auth_error(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------- exposure


class Exposed(RuntimeError):
    """The server would listen beyond loopback with no API key (and no ``--insecure``)."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, *, insecure: bool = False) -> str:
    """The one-line startup note on the server's mode; raises :class:`Exposed` when it
    would listen on a non-loopback address while no key exists, unless ``insecure``."""
    db = Database(settings.db_url, pool_size=1)
    try:
        keyed = any_key_exists(db)
    finally:
        db.dispose()
    if keyed:
        return "API keys: required on every /api/v1 request"
    if is_loopback(settings.host):
        return (
            "API keys: none exist, so every request is allowed as the default project "
            "(open mode, loopback only); `tuneforge keys create` turns keys on"
        )
    if insecure:
        return (
            f"API keys: none exist and --insecure is set: anyone who reaches {settings.host} "
            "can read, change and delete every study"
        )
    shown = make_url(settings.db_url).render_as_string(hide_password=True)
    raise Exposed(
        f"refusing to listen on {settings.host} with no API key: create one with "
        f"`tuneforge keys create --project default --role admin --db {shown}` "
        "(see docs/deploy.md), or pass --insecure"
    )
