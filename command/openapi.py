"""The OpenAPI document, made to tell the truth about errors and credentials.

FastAPI documents a 422 with a body this API never sends (``{"detail": [...]}``) and
nothing else that can go wrong. One pass over the routes adds, to every operation, the
error statuses it can return, each with the body every error has (``ErrorBody``):

- 401 and 403 where the route needs a caller (every role check may refuse, and an API
  key's machine role may do nothing but post alerts);
- 404 where the path names a row (``{..._id}``);
- 400 and 413 where there is a body, 422 where there are parameters or a body;
- 503 where the route needs the database (down: ``database_unavailable``), and 500
  everywhere (the JSON body of command/middleware.py's InternalErrors).

Statuses that depend on what the route does (409 on a state change or a duplicate, 404
for a row named in the body, 429, 415) are declared on the route itself, with
``responses=``; their bodies are filled in here too. Routes that need a caller also list
the credentials they take (``securitySchemes``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field
from starlette.routing import Mount

from command.intake.router import alert_caller
from core.web import get_principal, get_session, get_telemetry_principal


class ErrorBody(BaseModel):
    """What every error answers (4xx and 5xx alike)."""

    error: str = Field(description="a stable code, e.g. not_found, validation_error")
    message: str = Field(description="for people: what was wrong")
    details: Any = Field(
        default=None,
        description="more, when there is more: for validation_error the list of problems "
        "(`loc`, `msg`, `type`); for internal_error the log reference",
    )


ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
DESCRIPTIONS = {
    400: "the body cannot be read (for JSON: not UTF-8 text)",
    401: "no credentials, or bad ones (expired or revoked token, bad signature)",
    403: "the caller's role may not do this",
    404: "no such row",
    409: "conflicts with the current state",
    413: "request body too large",
    415: "unsupported media type",
    422: "invalid input; for validation_error, `details` lists each problem",
    429: "too many attempts; retry after `Retry-After` seconds",
    500: "internal error; `details.reference` names the server's log entry",
    503: "a part the request needs is unavailable (the database, the road network); retry",
}
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "a token from POST /api/auth/token",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "a machine key with X-Timestamp and X-Signature (README: signing)",
    },
}
_HEALTH = {
    "type": "object",
    "required": ["status", "database", "realtime"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
        "database": {"type": "string", "description": "ok, or why not"},
        "postgis": {"type": "string"},
        "realtime": {"type": "object"},
    },
}
HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": _HEALTH}}},
    503: {
        "description": "the database is unreachable (`status`: down)",
        "content": {"application/json": {"schema": _HEALTH}},
    },
}
# Dependencies that make a route need a caller, and the credentials that can be allowed
# there: a machine key authenticates anywhere, but its role may only post alerts (403
# elsewhere), and no person's role may post them.
CALLERS: dict[Callable[..., Any], list[dict[str, list[str]]]] = {
    get_principal: [{"bearer": []}],
    get_telemetry_principal: [{"bearer": []}, {"apiKey": []}],
    alert_caller: [{"apiKey": []}],
}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the corrected document (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = correct(build(), app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def correct(schema: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    """``schema`` with every operation's error responses and credentials (module doc)."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components["securitySchemes"] = SECURITY_SCHEMES
    for route in _api_routes(app):
        for method in route.methods:
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _correct_operation(operation, route)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """Every API route as served (an included router's routes carry its prefix)."""
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            yield route


def _correct_operation(operation: dict[str, Any], route: Any) -> None:
    responses = operation.setdefault("responses", {})
    default_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
    if default_422.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]
    for status in sorted(error_statuses(route) | _declared_errors(route)):
        _error_response(responses.setdefault(str(status), {}), status)
    security = credentials(route.dependant)
    if security:
        operation["security"] = security
        responses["401"].setdefault("headers", {})["WWW-Authenticate"] = {
            "schema": {"type": "string"},
            "description": "Bearer",
        }


def _error_response(response: dict[str, Any], status: int) -> None:
    response.setdefault("description", DESCRIPTIONS.get(status, "error"))
    content = response.setdefault("content", {})
    json_body = content.get("application/json") or {}
    if "schema" not in json_body:
        content["application/json"] = {**json_body, "schema": ERROR_REF}


def _declared_errors(route: Any) -> set[int]:
    return {int(s) for s in route.responses if str(s).isdigit() and int(s) >= 400}


def error_statuses(route: Any) -> set[int]:
    """The error statuses ``route`` can return because of how it is built."""
    dependant = route.dependant
    statuses = {500}
    if needs_caller(route):
        statuses |= {401, 403}
    if any(p.name.endswith("id") for p in dependant.path_params):
        statuses.add(404)
    if route.body_field is not None or "requestBody" in (route.openapi_extra or {}):
        statuses |= {400, 413, 422}  # 400: not text in the declared encoding
    if any(_params(dependant)):
        statuses.add(422)
    if _uses(dependant, {get_session}) or needs_caller(route):
        statuses.add(503)
    return statuses


def needs_caller(route: Any) -> bool:
    return bool(credentials(route.dependant))


def credentials(dependant: Dependant) -> list[dict[str, list[str]]]:
    """The security requirements of the first caller dependency found (none: public)."""
    for sub in dependant.dependencies:
        if sub.call in CALLERS:
            return CALLERS[sub.call]
        found = credentials(sub)
        if found:
            return found
    return []


def _uses(dependant: Dependant, calls: set[Callable[..., Any]]) -> bool:
    return any(d.call in calls or _uses(d, calls) for d in dependant.dependencies)


def _params(dependant: Dependant) -> Iterator[Any]:
    yield from dependant.path_params
    yield from dependant.query_params
    yield from dependant.header_params
    for sub in dependant.dependencies:
        yield from _params(sub)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods some route of ``app`` takes at ``path`` (for a 405's ``Allow``)."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        if not route.path_regex.match(path):
            continue
        if isinstance(route.original_route, Mount):
            methods |= {"GET", "HEAD"}  # static files
        else:
            methods |= route.methods or set()
    return sorted(methods)
