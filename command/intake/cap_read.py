"""Reading a posted CAP body safely, before any CAP rule: the media type, XML parsed by
defusedxml over expat with DTDs, entities and external references forbidden (nothing is ever
resolved or fetched), size, depth and element count bounded before a tree is kept, and the
JSON form turned into the same element tree. A body that cannot be read is
:class:`Unreadable` (400); a refused message is :class:`CapRefused` (422)."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from core.errors import InvalidInput, UnreadableBody, UnsupportedMediaType
from core.validate import unstorable

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"

MAX_DEPTH = 16  # a real alert is 5 deep (alert/info/area/geocode/value)
MAX_ELEMENTS = 20_000
MAX_BYTES = 4 * 1024 * 1024  # the HTTP limit is lower (EMERGENCY_ALERT_MAX_BYTES)
MAX_TEXT = 1_000_000  # characters in one element (a 10,000-point polygon is ~200,000)


class CapRefused(InvalidInput):
    """The message cannot be trusted or read; ``details`` lists ``{"field", "message"}``."""

    code = "invalid_cap"

    def __init__(self, problems: list[tuple[str, str]], *, code: str | None = None) -> None:
        first_field, first_message = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"{first_field}: {first_message}{more}",
            details=[{"field": f, "message": m} for f, m in problems],
        )
        if code is not None:
            self.code = code
        self.field = first_field


class Unreadable(CapRefused, UnreadableBody):
    """Not XML or JSON at all, hostile XML, or an encoding we cannot read (HTTP 400)."""

    code = "unreadable"


def local_name(tag: str) -> tuple[str, str]:
    """``(namespace, name)`` of an element's tag."""
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def read_xml(body: bytes) -> ET.Element:
    """The root element, parsed with DTDs, entities and external references forbidden and
    depth, element count and text size bounded; :class:`Unreadable` otherwise."""
    if not body.strip():
        raise Unreadable([("body", "empty body; send a CAP alert")])
    if len(body) > MAX_BYTES:
        raise Unreadable([("body", f"over {MAX_BYTES} bytes")])
    depth = 0
    count = 0
    root: ET.Element | None = None
    try:
        events = iterparse(
            io.BytesIO(body),
            events=("start", "end"),
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        for event, elem in events:
            if event == "start":
                depth += 1
                count += 1
                if root is None:
                    root = elem
                if depth > MAX_DEPTH:
                    raise Unreadable([("body", f"XML nested deeper than {MAX_DEPTH} levels")])
                if count > MAX_ELEMENTS:
                    raise Unreadable([("body", f"more than {MAX_ELEMENTS} XML elements")])
                if len(elem.attrib) > 32 or any(len(v) > MAX_TEXT for v in elem.attrib.values()):
                    raise Unreadable([("body", "XML attributes too many or too long")])
            else:
                depth -= 1
                if elem.text is not None and len(elem.text) > MAX_TEXT:
                    raise Unreadable(
                        [(local_name(elem.tag)[1], f"text over {MAX_TEXT} characters")]
                    )
    except DefusedXmlException as exc:
        what = type(exc).__name__.replace("Forbidden", "")
        raise Unreadable(
            [("body", f"XML with a {what or 'forbidden construct'} is refused (never resolved)")],
            code="forbidden_xml",
        ) from None
    except ET.ParseError as exc:
        message = str(exc)
        where = "encoding" if "encoding" in message else "body"
        raise Unreadable([(where, f"not well-formed XML: {message}")]) from None
    except (ValueError, LookupError, UnicodeError) as exc:
        raise Unreadable([("encoding", f"cannot read the XML: {exc}")]) from None
    assert root is not None
    return root


def json_to_element(body: bytes) -> ET.Element:
    """The JSON form (CAP element names as keys, lists for repeated elements) as the same
    element tree the XML gives, so both go through one validation."""
    if len(body) > MAX_BYTES:
        raise Unreadable([("body", f"over {MAX_BYTES} bytes")])
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise Unreadable([("encoding", "JSON must be UTF-8")]) from None
    except RecursionError:
        raise Unreadable([("body", "JSON nested too deeply")]) from None
    except json.JSONDecodeError as exc:
        raise Unreadable([("body", f"not valid JSON: {exc.msg} at {exc.pos}")]) from None
    except ValueError as exc:  # an integer over Python's 4,300-digit conversion limit
        raise Unreadable([("body", f"not readable JSON: {str(exc)[:100]}")]) from None
    if not isinstance(data, dict):
        raise CapRefused([("alert", "the JSON form is an object of CAP fields")])
    if "alert" in data and isinstance(data["alert"], dict) and len(data) == 1:
        data = data["alert"]
    root = ET.Element(f"{{{CAP12}}}alert")
    count = [0]
    _fill(root, data, "alert", 1, count)
    return root


def _fill(
    parent: ET.Element, data: dict[str, Any], where: str, depth: int, count: list[int]
) -> None:
    if depth > MAX_DEPTH:
        raise Unreadable([(where, f"JSON nested deeper than {MAX_DEPTH} levels")])
    for key, value in data.items():
        if not isinstance(key, str) or not key or len(key) > 100 or unstorable(key):
            raise CapRefused([(where, "JSON keys must be CAP element names")])
        values = value if isinstance(value, list) else [value]
        for item in values:
            count[0] += 1
            if count[0] > MAX_ELEMENTS:
                raise Unreadable([("body", f"more than {MAX_ELEMENTS} fields")])
            child = ET.SubElement(parent, f"{{{CAP12}}}{key}")
            if isinstance(item, dict):
                _fill(child, item, f"{where}.{key}", depth + 1, count)
            elif isinstance(item, bool) or item is None or isinstance(item, list):
                raise CapRefused([(f"{where}.{key}", "must be a string, a number or an object")])
            elif isinstance(item, str | int | float):
                # XML cannot carry these either; PostgreSQL cannot store them.
                why = unstorable(item) if isinstance(item, str) else None
                if why:
                    raise CapRefused([(f"{where}.{key}", f"{why}, which cannot be stored")])
                child.text = str(item)
            else:  # pragma: no cover - json gives nothing else
                raise CapRefused([(f"{where}.{key}", "unsupported value")])


XML_TYPES = ("application/cap+xml", "application/xml", "text/xml")
JSON_TYPES = ("application/json", "application/cap+json")


class UnsupportedMedia(UnsupportedMediaType):
    code = "unsupported_media_type"


def media_type(content_type: str | None) -> str:
    """``xml`` or ``json`` from the Content-Type (parameters ignored: XML names its own
    encoding, JSON must be UTF-8); another type is :class:`UnsupportedMedia`."""
    value = (content_type or "").split(";")[0].strip().lower()
    if value in XML_TYPES:
        return "xml"
    if value in JSON_TYPES:
        return "json"
    raise UnsupportedMedia(
        f"Content-Type {value or 'missing'!r}: send {', '.join(XML_TYPES + JSON_TYPES[:1])}"
    )
