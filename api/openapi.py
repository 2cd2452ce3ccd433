"""What the OpenAPI document says beyond the routes' own types.

- :func:`errors` declares the error statuses a route can answer, each with the
  one error body every failure uses (``ErrorBody``, see ``api/errors.py``).
- :func:`install_openapi` makes the document say the same where FastAPI would add its
  own ``HTTPValidationError`` (request validation errors answer ``ErrorBody`` too).
- :func:`operation_id` gives routes without an explicit ``operation_id`` a
  camelCase one from their function name (every route here sets its own).
- Request examples shown in the docs and copied by generated clients.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from .schemas.common import ErrorBody

_ERRORS: dict[int, tuple[str, str, str, dict[str, Any] | None]] = {
    400: (
        "The request body is not valid JSON.",
        "bad_request",
        "the request body is not valid JSON",
        None,
    ),
    401: (
        "No API key, or one that is unknown or revoked (only once the server has keys).",
        "unauthorized",
        "a valid API key is required: Authorization: Bearer <key>",
        None,
    ),
    403: (
        "The key's role does not allow this request.",
        "forbidden",
        "this request needs the editor role; the key is a viewer",
        None,
    ),
    429: (
        "Too many requests from this key (or address): retry after Retry-After seconds.",
        "rate_limited",
        "rate limit exceeded for this key: at most 100 requests per second (bursts of 200); "
        "retry in 1 s",
        {"retry_after": 1},
    ),
    404: (
        "The study, trial or resource does not exist.",
        "not_found",
        "study_id: study 42 does not exist",
        {"field": "study_id"},
    ),
    409: (
        "The request does not fit the current state (finished trial, existing name, "
        "spent budget); retrying the same request will not help.",
        "conflict",
        "trial 3 is already completed; cannot report measurements",
        {"trial_state": "completed"},
    ),
    413: (
        "The request body is larger than the server accepts (TUNEFORGE_MAX_BODY_BYTES).",
        "payload_too_large",
        "request body exceeds 4194304 bytes",
        {"max_bytes": 4194304},
    ),
    422: (
        "A field breaks a rule; the message and details.field name it.",
        "invalid_spec",
        "parameters[0].low: log scale needs low > 0, got 0.0",
        {"field": "parameters[0].low"},
    ),
    503: (
        "The database is temporarily unavailable; retry after Retry-After seconds.",
        "temporary",
        "database temporarily unavailable: database is locked",
        None,
    ),
}

#: The statuses of a route that reads a JSON body (malformed, too large, invalid).
BODY = (400, 413, 422)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with ``ErrorBody`` and an example."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        description, code, message, details = _ERRORS[status]
        example = {"error": {"code": code, "message": message, "details": details}}
        out[status] = {
            "model": ErrorBody,
            "description": description,
            "content": {"application/json": {"example": example}},
        }
    return out


_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    """Serve a document whose every 422 is ``ErrorBody``, as ``api/errors.py`` answers."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
            _replace_fastapi_422(doc)
            _declare_keys(doc)
            _restore_null_details(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def _replace_fastapi_422(doc: dict[str, Any]) -> None:
    ours = errors(422)[422]
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            ref = (
                str(
                    response.get("content", {})
                    .get("application/json", {})
                    .get("schema", {})
                    .get("$ref", "")
                )
                if response
                else ""
            )
            if ref.endswith("/HTTPValidationError"):
                operation["responses"]["422"] = {
                    "description": ours["description"],
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorBody"},
                            "example": ours["content"]["application/json"]["example"],
                        }
                    },
                }
    schemas = doc.get("components", {}).get("schemas", {})
    for name in _FASTAPI_ONLY:
        schemas.pop(name, None)


#: The API's prefix: every route under it takes an API key once the server has keys.
KEYED_PREFIX = "/api/v1/"
BEARER = "apiKey"


def _declare_keys(doc: dict[str, Any]) -> None:
    """Every ``/api/v1`` operation: the bearer key scheme, and 401 / 403 with ``ErrorBody``
    (api/auth.py checks them in one dependency, so no route declares them itself)."""
    schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`tuneforge keys create`); not needed while the server "
        "has no keys (open mode).",
    }
    keyed = errors(401, 403, 429)
    for path, operations in doc.get("paths", {}).items():
        if path == "/metrics":  # needs a key when the operator closes it (api/auth.py)
            for operation in operations.values():
                _add_errors(operation, errors(401))
        if not path.startswith(KEYED_PREFIX):
            continue
        for operation in operations.values():
            operation["security"] = [{BEARER: []}, {}]  # {}: open mode takes no key
            _add_errors(operation, keyed)


def _add_errors(operation: dict[str, Any], declared: dict[int | str, dict[str, Any]]) -> None:
    for status, response in declared.items():
        operation.setdefault("responses", {})[str(status)] = {
            "description": response["description"],
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorBody"},
                    "example": response["content"]["application/json"]["example"],
                }
            },
        }
        if str(status) == "429":
            operation["responses"]["429"]["headers"] = {
                "Retry-After": {
                    "description": "whole seconds to wait before retrying",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }


def _restore_null_details(doc: dict[str, Any]) -> None:
    """FastAPI drops ``None`` from the document; the real body has ``"details": null``."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                example = response.get("content", {}).get("application/json", {}).get("example")
                if isinstance(example, dict) and isinstance(example.get("error"), dict):
                    example["error"].setdefault("details", None)


def operation_id(route: APIRoute) -> str:
    """``create_study`` -> ``createStudy``: a readable id that does not change with the path."""
    head, *rest = route.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def example(summary: str, value: Any) -> dict[str, Any]:
    """One entry of ``openapi_examples``."""
    return {"summary": summary, "value": value}


STUDY_EXAMPLES = {
    "manual": example(
        "Two parameters, one metric, median early stopping",
        {
            "name": "resnet-lr",
            "parameters": [
                {"name": "lr", "type": "float", "low": 1e-5, "high": 0.1, "scale": "log"},
                {"name": "optimizer", "type": "categorical", "values": ["adam", "sgd"]},
            ],
            "metrics": [{"name": "accuracy", "goal": "maximize"}],
            "algorithm": "auto",
            "early_stopping": {"rule": "median", "n_warmup_steps": 2},
            "max_trials": 50,
        },
    ),
    "managed": example(
        "A managed scikit-learn objective the workers run",
        {
            "name": "svc-iris",
            "parameters": [
                {"name": "C", "type": "float", "low": 0.01, "high": 100, "scale": "log"},
                {"name": "kernel", "type": "categorical", "values": ["rbf", "linear"]},
            ],
            "metrics": [{"name": "accuracy", "goal": "maximize"}],
            "max_trials": 30,
            "objective": {
                "kind": "sklearn",
                "estimator": "sklearn.svm.SVC",
                "dataset": {"source": "sklearn", "name": "iris"},
                "cv": {"type": "stratified_kfold", "n_splits": 5},
                "scoring": "accuracy",
            },
        },
    ),
}
SUGGEST_EXAMPLES = {
    "one": example("One trial for worker w1", {"count": 1, "client_id": "w1"}),
}
MEASUREMENT_EXAMPLES = {
    "epoch": example(
        "Accuracy after epoch 3", {"step": 3, "values": {"accuracy": 0.71}, "elapsed_seconds": 42.5}
    ),
    "batch": example(
        "Epoch 9 with epochs 4 to 8 held back (the last reply's next_decision_step was 9)",
        {
            "step": 9,
            "values": {"accuracy": 0.84},
            "earlier": [
                {"step": s, "values": {"accuracy": a}}
                for s, a in ((4, 0.74), (5, 0.77), (6, 0.79), (7, 0.81), (8, 0.83))
            ],
        },
    ),
}
COMPLETE_EXAMPLES = {
    "values": example("Final values", {"values": {"accuracy": 0.93}}),
    "infeasible": example(
        "The configuration could not be evaluated",
        {"infeasible": True, "reason": "out of memory at batch 512"},
    ),
}
