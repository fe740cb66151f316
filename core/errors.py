"""Domain errors. Services raise these; the web layer maps them to HTTP in one table."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a service may raise on purpose."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class InvalidInput(DomainError):
    code = "invalid_input"


class UnreadableBody(InvalidInput):
    """The body cannot be read at all: not the format it says, hostile, or an unknown
    encoding (400, not 422: there is nothing to validate)."""

    code = "unreadable"


class UnsupportedMediaType(InvalidInput):
    """A Content-Type the route does not take (415)."""

    code = "unsupported_media_type"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Forbidden(DomainError):
    code = "forbidden"


class Unavailable(DomainError):
    """A part the request needs is not there right now (503)."""

    code = "unavailable"


class TooManyRequests(DomainError):
    """The caller must wait before trying again (429 + Retry-After)."""

    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class Busy(Unavailable):
    """The server is at capacity for this kind of work right now (503 + Retry-After)."""

    code = "busy"

    def __init__(self, message: str, *, retry_after_s: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s
