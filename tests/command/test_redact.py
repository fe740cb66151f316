"""Trackers' ids never reach the logs, however the URL spells the parameter."""

from __future__ import annotations

import logging

import pytest

from command.redact import RedactSecrets, redact


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '127.0.0.1:5 - "GET /api/avl/osmand?lat=1&id=S3cr3t&lon=2 HTTP/1.1" 200',
            '127.0.0.1:5 - "GET /api/avl/osmand?lat=1&id=***&lon=2 HTTP/1.1" 200',
        ),
        ("GET /api/avl/osmand?%69d=S3cr3t&lat=1 x", "GET /api/avl/osmand?%69d=***&lat=1 x"),
        ("/api/avl/osmand?DeviceID=S3cr3t&x=1", "/api/avl/osmand?DeviceID=***&x=1"),
        ("/api/avl/osmand?device_id=S3cr3t", "/api/avl/osmand?device_id=***"),
        ("/api/avl/osmand?i+d=x&id+=S3cr3t", "/api/avl/osmand?i+d=x&id+=***"),
        ("/api/units?id=3", "/api/units?id=3"),  # not a tracker's URL
        ("/api/avl/osmand", "/api/avl/osmand"),
    ],
)
def test_redact(line: str, expected: str):
    assert redact(line) == expected
    assert "S3cr3t" not in redact(line)


def test_the_filter_rewrites_uvicorns_access_record():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/api/avl/osmand?id=S3cr3t&lat=1", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    assert "S3cr3t" not in record.getMessage()
    assert "id=***" in record.getMessage()
