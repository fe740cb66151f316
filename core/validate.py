"""Shared input types for request bodies: ids that fit a bigint, text that is safe to store
and to show, finite numbers and client timestamps in a sane window (pydantic only).

PostgreSQL cannot hold what Python can: a ``bigint`` stops at 2**63 - 1, ``text`` and
``jsonb`` refuse NUL, and a lone surrogate cannot be encoded at all. Each of those used to
reach the database and come back as a 500; these types refuse them with a 422 first.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, Field, GetJsonSchemaHandler, Strict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# --- ids and numbers ----------------------------------------------------------------------
MAX_ID = 2**63 - 1  # PostgreSQL bigint, the type of every id column
MAX_SEED = 2**31 - 1  # OR-Tools and numpy take a 32-bit seed

# Strict: JSON true/false are not ids (pydantic would take them as 1 and 0).
Id = Annotated[int, Strict(), Field(ge=1, le=MAX_ID, description="a row id (1 .. 2^63-1)")]
EdgeId = Annotated[int, Strict(), Field(ge=0, le=MAX_ID, description="a road edge id")]
Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED, description="random seed (0 .. 2^31-1)")]


def check_ref(value: str, kinds: tuple[str, ...]) -> str:
    """``kind:id`` with a known kind and an id that fits a bigint."""
    kind, sep, raw = value.partition(":")
    if not sep or kind not in kinds or not raw.isascii() or not raw.isdigit():
        raise ValueError(f"must be {' or '.join(k + ':<id>' for k in kinds)}")
    if len(raw) > len(str(MAX_ID)) or not 1 <= int(raw) <= MAX_ID:
        raise ValueError(f"the id must be between 1 and {MAX_ID}")
    return value


# --- text --------------------------------------------------------------------------------
# Characters refused in every text field. Bidi embeddings, overrides and isolates
# (U+202A-U+202E, U+2066-U+2069) make text display in another order than it is stored
# ("Trojan Source"); zero-width and other invisible characters (U+200B, U+2060-U+2064,
# U+FEFF, U+206A-U+206F, U+FFF9-U+FFFB) make two different titles look the same; C1
# controls and DEL act on terminals and logs; U+2028/U+2029 break a line where none may be.
# ZWJ/ZWNJ (emoji sequences, Persian and Indic scripts), LRM/RLM/ALM (they only mark the
# direction of neighbouring neutral characters) and tag characters (flag sequences) stay.
# Written in the regex syntax Python and ECMAScript share, so the same text is the OpenAPI
# ``pattern`` (lone surrogates, which no JSON schema pattern can name, only in the check).
_REFUSED_ANYWHERE = (
    r"\x7F-\x9F\u200B\u2028\u2029\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB"
)
ONE_LINE_PATTERN = r"^[^\x00-\x1F" + _REFUSED_ANYWHERE + r"]*$"
MULTI_LINE_PATTERN = r"^[^\x00-\x08\x0B-\x1F" + _REFUSED_ANYWHERE + r"]*$"  # \t and \n stay
_ONE_LINE_BAD = re.compile(r"[\x00-\x1F" + _REFUSED_ANYWHERE + r"\uD800-\uDFFF]")
_MULTI_LINE_BAD = re.compile(r"[\x00-\x08\x0B-\x1F" + _REFUSED_ANYWHERE + r"\uD800-\uDFFF]")
_UNENCODABLE = re.compile(r"[\x00\uD800-\uDFFF]")


def _describe(char: str) -> str:
    if "\ud800" <= char <= "\udfff":
        return f"U+{ord(char):04X} (a lone surrogate: not valid Unicode)"
    name = unicodedata.name(char, "") or "control character"
    return f"U+{ord(char):04X} ({name})"


def _refuse(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        found = pattern.search(value)
        if found is not None:
            raise ValueError(
                f"contains {_describe(found.group())} at position {found.start()}; {what}"
            )
        return value

    return check


_one_line = _refuse(_ONE_LINE_BAD, "control, bidi-override and invisible characters are refused")
_multi_line = _refuse(
    _MULTI_LINE_BAD,
    "only newline and tab are allowed among control, bidi-override and invisible characters",
)
_storable = _refuse(_UNENCODABLE, "NUL and lone surrogates cannot be stored")


@dataclass(frozen=True)
class SchemaPattern:
    """Shows ``pattern`` in the JSON schema (OpenAPI) while a validator does the check, so
    a refusal names the character and where it is rather than quoting the regex."""

    pattern: str

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema


# Length limits stay at each field (``Field(max_length=...)``, ``Query(max_length=...)``);
# these add what a string may contain. One line: names, titles, addresses, ids, query
# filters. Multi-line: descriptions and notes.
Line = Annotated[str, AfterValidator(_one_line), SchemaPattern(ONE_LINE_PATTERN)]
MultiLine = Annotated[str, AfterValidator(_multi_line), SchemaPattern(MULTI_LINE_PATTERN)]
# Passwords keep every character a person can type; only what cannot be encoded goes.
Secret = Annotated[str, AfterValidator(_storable)]


def unstorable(text: str) -> str | None:
    """Why PostgreSQL cannot store ``text`` (a NUL or a lone surrogate in it), or None."""
    found = _UNENCODABLE.search(text)
    return None if found is None else f"contains {_describe(found.group())}"


_LINE_BREAKS = re.compile(r"[\t\n\r\x0B\x0C\x85\u2028\u2029]")


def clean_line(text: str) -> str:
    """``text`` fit for a one-line field: line breaks and tabs become spaces, every other
    refused character U+FFFD. For text a machine sent (a CAP headline): its message is
    not refused for it; the raw message keeps the original."""
    return _ONE_LINE_BAD.sub("\ufffd", _LINE_BREAKS.sub(" ", text))


def clean_text(text: str) -> str:
    """``text`` fit for a multi-line field (see :func:`clean_line`); CR LF becomes LF."""
    return _MULTI_LINE_BAD.sub("\ufffd", text.replace("\r\n", "\n"))


# --- client timestamps ------------------------------------------------------------------
# Outside these years a timestamp is a client's mistake, and near year 1 or 9999 a UTC
# offset pushes it out of what Python's datetime (and so the driver) can represent.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _sane_years(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset (ISO 8601, e.g. 2026-07-01T08:00:00+08:00)")
    # Compared by year first: subtracting the offset of 0001-01-01T00:00+14:00 overflows.
    if not EARLIEST.year <= value.year < LATEST.year or not EARLIEST <= value < LATEST:
        raise ValueError(f"must lie between {EARLIEST.date()} and {LATEST.date()}")
    return value


def check_recent(
    value: datetime, *, max_age_s: float, max_future_s: float, now: datetime | None = None
) -> datetime:
    """``value`` if it lies within ``max_age_s`` before and ``max_future_s`` after now."""
    value = _sane_years(value)
    now = now or datetime.now(UTC)
    if value < now - timedelta(seconds=max_age_s):
        raise ValueError(f"is more than {max_age_s:g} s in the past")
    if value > now + timedelta(seconds=max_future_s):
        raise ValueError(f"is more than {max_future_s:g} s in the future")
    return value


# A timestamp a client chose (a zone's start or end): aware, and in a sane range of years.
ClientTime = Annotated[datetime, AfterValidator(_sane_years)]
