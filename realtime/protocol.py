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
The full reference is docs/realtime.md.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from core.errors import InvalidInput

TOPIC_PATTERN = r"^(situation|unit:[1-9][0-9]{0,15}|drill:[1-9][0-9]{0,15})$"
TOPIC_RE = re.compile(TOPIC_PATTERN)
Topic = Annotated[str, StringConstraints(pattern=TOPIC_PATTERN)]
Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:\-]{8,100}$")]
MAX_TOPICS = 16  # per connection: a big screen needs one or two, a phone one


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
    resume: dict[Topic, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, max_length=MAX_TOPICS
    )
    # Take {"type":"batch","messages":[event, ...]} when several events are waiting.
    batch: bool = False


class Subscribe(_Message):
    type: Literal["subscribe"]
    topics: list[Topic] = Field(min_length=1, max_length=MAX_TOPICS)
    resume: dict[Topic, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, max_length=MAX_TOPICS
    )


class Unsubscribe(_Message):
    type: Literal["unsubscribe"]
    topics: list[Topic] = Field(min_length=1, max_length=MAX_TOPICS)


class Ack(_Message):
    type: Literal["ack"]
    topic: Topic
    seq: Annotated[int, Field(ge=1)]
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


def parse(data: Any) -> _Message:
    """Validate one decoded JSON message; InvalidInput names what is wrong."""
    if not isinstance(data, dict):
        raise InvalidInput("a message must be a JSON object with a 'type'")
    kind = data.get("type")
    model = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(sorted(_BY_TYPE))
        raise InvalidInput(f"unknown message type {str(kind)[:40]!r}; one of {known}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"{kind}: {where}: {first.get('msg', 'invalid')}") from None


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **extra}
