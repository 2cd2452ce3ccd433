"""The four calls of every trial (suggest, measurement, heartbeat, complete) served
without FastAPI's per-request dependency solving, for the requests that bind cleanly.

Under a team's load the server's interpreter is the bottleneck, and FastAPI spends a
good part of a hot call's CPU working out, request by request, what its endpoint needs:
it walks the route's dependency graph, reads and validates the body through its generic
machinery, validates the reply against the response model again and serializes it
(docs/performance.md, run Y: up to 0.6 ms of a call's 2-4 ms of server CPU).

A :class:`HotRoute` sits ahead of the app's routes for one of those paths. It binds the
endpoint's parameters itself: the path's ids (digits within the id range), the body
(``application/json`` parsed and validated by the route's model, or no body where the
route ignores it), the database, the request and the background tasks; runs the router's
authorization dependency; calls the route's own endpoint function; and writes the reply
as the route's model serialized to JSON. The endpoint is the same code either way.

A request it cannot bind exactly (another method, a body that is not JSON, does not parse
or fails validation, an id out of range, another content type) goes on, untouched, to
FastAPI's route: the body is replayed and routing starts again without the hot routes,
so every error reply is FastAPI's own. ``tests/api/test_hot_routes.py`` sends the same
calls, good and bad, to an app with and without hot routes and compares the replies.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel, TypeAdapter
from starlette.datastructures import Headers, URLPath
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from .auth import API_PREFIX, authorize_route
from .routes import trials
from .routes.deps import MAX_ID
from .text_guard import ClientGone, read_body, replay

#: Set in the scope of a request handed on to FastAPI: the hot routes then match nothing.
HANDED_ON = "tuneforge.hot_routes.handed_on"
#: The parameters a hot endpoint may take (anything else: the route is not made hot).
_BOUND = frozenset({"study_id", "number", "body", "db", "request", "background"})
_JSON_TYPE = re.compile(r"application/json\s*(;\s*charset\s*=\s*\"?utf-8\"?\s*)?", re.I)
_ID = r"(0|[1-9][0-9]{0,9})"


class HotRoute(BaseRoute):
    """One hot path (``template`` under the API prefix, ``POST``) served by ``endpoint``,
    whose reply is a ``reply_model`` and whose body is a ``body_model`` (None: a body the
    route ignores, ``{}`` or nothing)."""

    def __init__(
        self,
        template: str,
        endpoint: Callable[..., Awaitable[BaseModel]],
        body_model: type[BaseModel] | None,
        reply_model: type[BaseModel],
    ) -> None:
        self.path = API_PREFIX + template  # what route_template (auth, metrics) reads
        self.endpoint = endpoint
        self.body_model = body_model
        self.reply = TypeAdapter(reply_model)
        self.params = frozenset(inspect.signature(endpoint).parameters)
        if self.params - _BOUND:
            unknown = sorted(self.params - _BOUND)
            raise TypeError(f"{endpoint.__name__}: no hot binding for {unknown}")
        pattern = re.escape(self.path).replace(r"\{study_id\}", _ID).replace(r"\{number\}", _ID)
        self.regex = re.compile(pattern)
        self.served = 0
        self.handed_on = 0

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "POST" or HANDED_ON in scope:
            return Match.NONE, {}
        if scope.get("root_path"):  # mounted under a prefix: FastAPI's routes know how
            return Match.NONE, {}
        found = self.regex.fullmatch(scope["path"])
        if found is None:
            return Match.NONE, {}
        ids = [int(g) for g in found.groups()]
        if any(i > MAX_ID for i in ids):
            return Match.NONE, {}  # FastAPI's route answers the out-of-range id
        names = [n for n in ("study_id", "number") if "{" + n + "}" in self.path]
        path_params = {n: str(i) for n, i in zip(names, ids, strict=True)}
        return Match.FULL, {"endpoint": self.endpoint, "path_params": path_params, "route": self}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # named by FastAPI's own route, not this one

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            raw = await read_body(receive)
        except ClientGone:
            return
        body, bound = self._bind_body(scope, raw)
        if not bound:
            await self._hand_on(scope, replay(raw, receive), send)
            return
        self.served += 1
        request = Request(scope, receive)
        await authorize_route(request)  # the router's dependency (api/auth.py)
        background = BackgroundTasks()
        values: dict[str, Any] = {
            "study_id": int(scope["path_params"]["study_id"]),
            "number": int(scope["path_params"].get("number", 0)),
            "body": body,
            "db": request.app.state.db,
            "request": request,
            "background": background,
        }
        reply = await self.endpoint(**{k: v for k, v in values.items() if k in self.params})
        response = Response(
            self.reply.dump_json(reply, by_alias=True),
            media_type="application/json",
            background=background if background.tasks else None,
        )
        await response(scope, receive, send)

    def _bind_body(self, scope: Scope, raw: bytes) -> tuple[Any, bool]:
        """The body as the endpoint takes it, and whether it bound as FastAPI binds it."""
        content_type = Headers(scope=scope).get("content-type")
        if self.body_model is None and not raw and content_type is None:
            return None, True
        if content_type is None or not _JSON_TYPE.fullmatch(content_type):
            return None, False
        try:
            value = json.loads(raw)
            if self.body_model is None:
                return value, isinstance(value, dict)
            return self.body_model.model_validate(value), True
        except ValueError:  # JSON or validation error (pydantic's is a ValueError)
            return None, False

    async def _hand_on(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Routes the request again, hot routes skipped (``receive`` replays its body)."""
        self.handed_on += 1
        scope[HANDED_ON] = True
        await scope["router"](scope, receive, send)


def hot_routes() -> list[HotRoute]:
    """The hot routes of :mod:`.routes.trials`."""
    study, trial = "/studies/{study_id}/trials", "/studies/{study_id}/trials/{number}"
    return [
        HotRoute(study + "/suggest", trials.suggest, trials.SuggestIn, trials.SuggestOut),
        HotRoute(
            trial + "/measurements", trials.add_measurement, trials.MeasurementIn, trials.MeasureOut
        ),
        HotRoute(trial + "/heartbeat", trials.heartbeat, None, trials.HeartbeatOut),
        HotRoute(trial + "/complete", trials.complete, trials.CompleteIn, trials.TrialPublic),
    ]


def install_hot_routes(app: FastAPI) -> list[HotRoute]:
    """Puts the hot routes ahead of the app's own routes; returns them."""
    routes = hot_routes()
    app.router.routes[0:0] = routes
    return routes
