"""Errors to HTTP: the domain-error table and the handlers every route answers through.

Every error body is ``{"error": code, "message": text, "details"?: ...}``; a 401 says
``WWW-Authenticate: Bearer``; a 429 or a busy 503 says ``Retry-After``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from command import openapi
from core.db import integrity_error
from core.errors import (
    Busy,
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
    UnreadableBody,
    UnsupportedMediaType,
)

log = logging.getLogger("emergency")

# Domain errors to HTTP, in one table (most specific class first).
ERROR_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (UnreadableBody, 400),
    (UnsupportedMediaType, 415),
    (InvalidInput, 422),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (TooManyRequests, 429),
    (Unavailable, 503),
    (DomainError, 400),
)


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = next(code for cls, code in ERROR_STATUS if isinstance(exc, cls))
    response = error_response(status, exc.code, exc.message, exc.details)
    if isinstance(exc, TooManyRequests | Busy):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return error_response(422, "validation_error", f"{where}: {first['msg']}", errors)


def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {
        400: "unreadable",  # a body FastAPI could not decode (not UTF-8)
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }
    response = error_response(
        exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
    )
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        # Every method the path takes: the router's own header names only the first
        # route it matched (GET /api/incidents, not POST), or none at all.
        methods = openapi.allowed_methods(request.app, request.url.path)
        response.headers["Allow"] = ", ".join(methods)
    return response


def integrity_error_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IntegrityError)
    return domain_error(_, integrity_error(exc))


def database_down(_: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable: %s", exc)
    return error_response(503, "database_unavailable", "the database is not reachable; retry")


def install(app: FastAPI) -> None:
    """Answer every error through the table above, as JSON."""
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(IntegrityError, integrity_error_response)
    app.add_exception_handler(OperationalError, database_down)
