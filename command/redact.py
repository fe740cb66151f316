"""Secrets kept out of the logs: a tracker's id travels in the URL (the OsmAnd protocol
has nowhere else for it), and uvicorn's access log writes URLs whole.

:class:`RedactSecrets` rewrites ``id=``, ``deviceid=`` and ``device_id=`` values in any
logged URL of ``/api/avl/`` to ``***``. It is installed on uvicorn's access logger (and
the error logger, which may quote a request line) once per process by the app factory.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

_URL = re.compile(r"/api/avl/[^\s\"]*")
SECRET_NAMES = frozenset({"id", "deviceid", "device_id"})
LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """``text`` with the tracker ids in its ``/api/avl/`` URLs replaced by ``***``."""
    if "/api/avl/" not in text:
        return text
    return _URL.sub(lambda m: _redact_url(m.group(0)), text)


def _redact_url(url: str) -> str:
    path, mark, query = url.partition("?")
    if not mark:
        return url
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        # The name as the server reads it (``%69d`` is ``id``), so no spelling slips by.
        if eq and unquote_plus(name).strip().lower() in SECRET_NAMES:
            part = f"{name}=***"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


class RedactSecrets(logging.Filter):
    """Redact tracker ids in a record's message and arguments (uvicorn passes the path
    with its query as an argument of the access line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """Add the filter to uvicorn's loggers (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
