"""report.html: the after-action report's plots (placeholder until the ECharts page lands)."""

from __future__ import annotations

import html
import json
from typing import Any


def render(report: dict[str, Any]) -> str:
    body = html.escape(json.dumps(report.get("policies", {}), ensure_ascii=False)[:2000])
    title = html.escape(str(report.get("scenario")))
    return f"<!doctype html><meta charset=utf-8><title>{title}</title><pre>{body}</pre>"
