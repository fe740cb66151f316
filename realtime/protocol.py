"""The WebSocket protocol: message shapes, topics, close codes (see DESIGN "Realtime protocol").

Client to server::

    {"type":"hello","token":"...","subscribe":["situation"],"resume":{"situation":120}}
    {"type":"subscribe","topics":["unit:7"],"resume":{"unit:7":14}}
    {"type":"unsubscribe","topics":["unit:7"]}
    {"type":"ack","topic":"unit:7","seq":15}
    {"type":"status","task_id":3,"status":"en_route","key":"<idempotency key>"}
    {"type":"position","lon":24.94,"lat":60.17,"recorded_at":"...","key":"..."}
    {"type":"auth","token":"..."}          a fresh token before the old one expires
    {"type":"ping"} / {"type":"pong"}

A hello may say ``"batch": true``: then events waiting together come as one
``{"type":"batch","messages":[{"type":"event",...}, ...]}`` (in order).

Server to client: ``welcome``, ``event``, ``batch``, ``resync`` (a snapshot instead of a replay),
``acked``, ``result`` (of a status or position, echoing its key), ``error``, ``ping``,
``pong``.

A client applies events in seq order and ignores a seq it has applied; a unit's phone still
acknowledges such a repeat (its earlier ack was lost), or the event keeps being re-sent.
Every integer in a message fits in 64 bits, every number is finite and no text holds a NUL
character (:func:`decode`): anything else is refused as ``invalid_message``, never passed on.
The full reference is docs/realtime.md.
"""

from __future__ import annotations

import json
import math
import re
from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from core.errors import InvalidInput

TOPIC_PATTERN = r"^(situation|unit:[1-9][0-9]{0,15}|drill:[1-9][0-9]{0,15})$"
TOPIC_RE = re.compile(TOPIC_PATTERN)
Topic = Annotated[str, StringConstraints(pattern=TOPIC_PATTERN)]
KEY_PATTERN = r"^[A-Za-z0-9._:\-]{8,100}$"
KEY_RE = re.compile(KEY_PATTERN)
Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
MAX_TOPICS = 16  # per connection: a big screen needs one or two, a phone one
# Ids and seqs are PostgreSQL bigints: a larger integer can only fail in the database,
# which a client would be told to retry forever.
INT64_MAX = 2**63 - 1
Seq = Annotated[int, Field(ge=0, le=INT64_MAX)]


class Close(IntEnum):
    """WebSocket close codes (4000-4999 are ours)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    TOO_BIG = 1009
    RESTART = 1012
    UNAUTHENTICATED = 4001  # bad or expired token, or no hello in time
    FORBIDDEN = 4003  # wrong Origin
    HEARTBEAT = 4008  # nothing heard from the client within the heartbeat timeout
    TOO_SLOW = 4009  # fell behind: reconnect and resume from the last seq received
    PROTOCOL = 4400  # malformed messages
    RATE_LIMITED = 4429


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Hello(_Message):
    type: Literal["hello"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    subscribe: list[Topic] = Field(default_factory=list, max_length=MAX_TOPICS)
    resume: dict[Topic, Seq] = Field(default_factory=dict, max_length=MAX_TOPICS)
    # Take {"type":"batch","messages":[event, ...]} when several events are waiting.
    batch: bool = False


class Subscribe(_Message):
    type: Literal["subscribe"]
    topics: list[Topic] = Field(min_length=1, max_length=MAX_TOPICS)
    resume: dict[Topic, Seq] = Field(default_factory=dict, max_length=MAX_TOPICS)


class Unsubscribe(_Message):
    type: Literal["unsubscribe"]
    topics: list[Topic] = Field(min_length=1, max_length=MAX_TOPICS)


class Ack(_Message):
    type: Literal["ack"]
    topic: Topic
    seq: Annotated[int, Field(ge=1, le=INT64_MAX)]
    key: Key | None = None


class Action(_Message):
    """A responder's action (task status or position); checked in full by the command side."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: Literal["status", "position"]
    key: Key


class Auth(_Message):
    type: Literal["auth"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class Ping(_Message):
    type: Literal["ping", "pong"]
    t: float | None = None


Message = Hello | Subscribe | Unsubscribe | Ack | Action | Auth | Ping
_BY_TYPE: dict[str, type[_Message]] = {
    "hello": Hello,
    "subscribe": Subscribe,
    "unsubscribe": Unsubscribe,
    "ack": Ack,
    "status": Action,
    "position": Action,
    "auth": Auth,
    "ping": Ping,
    "pong": Ping,
}


class BadMessage(InvalidInput):
    """A message refused as it stands (sending it again cannot help). ``key`` is its
    idempotency key when it had a usable one, so a phone can drop it from its outbox."""

    code = "invalid_message"

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def decode(raw: str) -> Any:
    """Decode one message's JSON, refusing what json.loads takes but no field may hold.

    Integers beyond 64 bits, NaN and infinities (json.loads accepts ``NaN``, ``Infinity``
    and ``1e400``; a browser's JSON has none of them, and pydantic would pass an infinity on
    as null) and NUL characters (PostgreSQL text cannot store them) are refused here, once
    for every message type, instead of failing later as "unavailable; retry".
    """
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadMessage(f"not JSON: {exc}"[:200]) from None
    problem = _unsafe(data)
    if problem is not None:
        raise BadMessage(problem, key=key_of(data))
    return data


def _unsafe(data: Any) -> str | None:
    """What makes a decoded message unsafe to act on, or None (walked without recursion)."""
    stack: list[tuple[Any, str]] = [(data, "message")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if not -INT64_MAX - 1 <= value <= INT64_MAX:
                return f"{where[:80]}: integers are limited to 64 bits (at most {INT64_MAX})"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return f"{where[:80]}: numbers must be finite (no NaN, Infinity or 1e400)"
        elif isinstance(value, str):
            if "\x00" in value:
                return f"{where[:80]}: text must not contain NUL characters"
        elif isinstance(value, dict):
            for name, item in value.items():
                if "\x00" in name:
                    return f"{where[:80]}: a field name contains a NUL character"
                stack.append((item, f"{where}.{name}"))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))
    return None


def key_of(data: Any) -> str | None:
    """The message's idempotency key, if it has a well-formed one."""
    key = data.get("key") if isinstance(data, dict) else None
    return key if isinstance(key, str) and KEY_RE.match(key) else None


def parse(data: Any) -> _Message:
    """Validate one decoded JSON message; BadMessage names what is wrong."""
    if not isinstance(data, dict):
        raise BadMessage("a message must be a JSON object with a 'type'")
    kind = data.get("type")
    model = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(sorted(_BY_TYPE))
        raise BadMessage(f"unknown message type {str(kind)[:40]!r}; one of {known}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BadMessage(
            f"{kind}: {where}: {first.get('msg', 'invalid')}", key=key_of(data)
        ) from None


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **extra}
