"""HTTP for positions: one fix, a gateway's batch, OsmAnd / Traccar trackers, and tracks.

Every path checks its fixes here (range, time window, the caller's right to the unit) and
hands them to the process's :class:`~resources.avl.writer.PositionWriter`, which answers
once they are committed: a 202 (or the tracker's 200) means the fix is durable.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter, ValidationError

from core.config import Settings
from core.errors import InvalidInput, NotFound, Unavailable
from core.security import require, require_unit
from core.validate import Id
from core.web import PathId, PrincipalDep, SessionDep, TelemetryPrincipalDep
from gis.features import Strict
from resources.avl.fixes import (
    KNOT_MPS,
    BadFix,
    Fix,
    Outcome,
    Window,
    device_hash,
    make_fix,
    window,
)
from resources.avl.track import MAX_SPAN, track_feature, unit_track
from resources.avl.writer import UNKNOWN_DEVICE, PositionWriter, writer_for
from resources.models import Unit
from resources.schemas import PositionReport

router = APIRouter(prefix="/api")
MAX_BATCH = 1000
OSMAND_MAX_BYTES = 16_384


def writer(request: Request) -> PositionWriter:
    return writer_for(request.app.state)


def times(settings: Settings) -> Window:
    return window(
        settings.position_max_age_s, settings.position_max_future_s, settings.track_retention_days
    )


async def _store(request: Request, fixes: list[Fix]) -> list[Outcome]:
    # The request holds no session (TelemetryPrincipalDep opens none): waiting for the
    # group commit it holds no connection, and the writer's transaction is its own.
    try:
        return await writer(request).store_async(fixes)
    except Exception as exc:
        raise Unavailable(f"positions could not be stored ({type(exc).__name__}); retry") from exc


# --- one fix ---------------------------------------------------------------------------
class PositionReceipt(BaseModel):
    unit_id: int
    position_id: int | None = Field(description="the fix's number in the track (None: a duplicate)")
    recorded_at: datetime
    duplicate: bool = Field(description="this unit already had a fix at this recorded_at")
    flag: Literal["jump"] | None = Field(
        description="jump: an impossible move from the unit's last position; kept in the "
        "track, not used as the unit's position"
    )


@router.post(
    "/units/{unit_id}/position",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PositionReceipt,
    tags=["units"],
)
async def post_unit_position(
    unit_id: PathId,
    body: PositionReport,
    request: Request,
    principal: TelemetryPrincipalDep,
) -> dict[str, Any]:
    """Append a fix to the unit's track (a responder: its own unit only). Answered once
    the fix is committed. The same ``recorded_at`` again is a duplicate, stored once:
    send ``recorded_at`` so that a retried upload is recognised."""
    require(principal, "unit.position")
    require_unit(principal, unit_id)
    settings: Settings = request.app.state.settings
    at = body.recorded_at or datetime.now(UTC)
    try:
        fix = make_fix(
            unit_id,
            body.lon,
            body.lat,
            at,
            times=times(settings),
            crs=body.crs,
            source="api",
            speed_mps=body.speed_mps,
            heading_deg=body.heading_deg,
            accuracy_m=body.accuracy_m,
        )
    except BadFix as exc:
        raise InvalidInput(str(exc)) from None
    (outcome,) = await _store(request, [fix])
    return receipt(fix, outcome)


def receipt(fix: Fix, outcome: Outcome) -> dict[str, Any]:
    """One fix's answer; an unknown unit is 404."""
    if outcome.status == "refused":
        raise NotFound(outcome.reason or f"unit {fix.unit_id} does not exist")
    return {
        "unit_id": fix.unit_id,
        "position_id": outcome.position_id,
        "recorded_at": fix.recorded_at,
        "duplicate": outcome.status == "duplicate",
        "flag": outcome.flag,
    }


# --- a gateway's batch -------------------------------------------------------------------
class BatchFix(Strict):
    unit_id: Id
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    recorded_at: AwareDatetime
    speed_mps: float | None = Field(default=None, ge=0, le=300)
    heading_deg: float | None = Field(default=None, ge=0, lt=360)
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000)
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"


_BATCH_FIX = TypeAdapter(BatchFix)


class PositionBatch(BaseModel):
    positions: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="fixes: {unit_id, lon, lat, recorded_at, speed_mps?, heading_deg?, "
        "accuracy_m?, crs?}; each is checked alone, a bad one is refused by its index",
    )


class Refusal(BaseModel):
    index: int
    reason: str


class BatchReceipt(BaseModel):
    accepted: int = Field(description="fixes now durable in the track (duplicates included)")
    duplicates: int = Field(description="of the accepted, fixes the track already had")
    flagged: list[Refusal] = Field(description="accepted, flagged (jump): not the unit's place")
    refused: list[Refusal] = Field(description="not stored, with the reason")


@router.post(
    "/positions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchReceipt,
    tags=["units"],
)
async def post_positions(
    body: PositionBatch, request: Request, principal: TelemetryPrincipalDep
) -> dict[str, Any]:
    """Up to 1,000 fixes of any units at once, for gateways (dispatchers, admins, API
    keys). Answered once the accepted fixes are committed; a refused fix is named by its
    index and changes nothing."""
    require(principal, "position.batch")
    window_ = times(request.app.state.settings)
    fixes: list[Fix] = []
    where: list[int] = []
    refused: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for index, item in enumerate(body.positions):
        try:
            got = _BATCH_FIX.validate_python(item)
            fix = make_fix(
                got.unit_id,
                got.lon,
                got.lat,
                got.recorded_at,
                times=window_,
                crs=got.crs,
                source="batch",
                speed_mps=got.speed_mps,
                heading_deg=got.heading_deg,
                accuracy_m=got.accuracy_m,
                now=now,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "fix"
            refused.append({"index": index, "reason": f"{loc}: {first['msg']}"})
            continue
        except BadFix as exc:
            refused.append({"index": index, "reason": str(exc)})
            continue
        fixes.append(fix)
        where.append(index)
    outcomes = await _store(request, fixes) if fixes else []
    accepted = duplicates = 0
    flagged = []
    for index, outcome in zip(where, outcomes, strict=True):
        if outcome.status == "refused":
            refused.append({"index": index, "reason": outcome.reason or "refused"})
            continue
        accepted += 1
        duplicates += outcome.status == "duplicate"
        if outcome.flag:
            flagged.append({"index": index, "reason": outcome.flag})
    refused.sort(key=lambda r: r["index"])
    return {"accepted": accepted, "duplicates": duplicates, "flagged": flagged, "refused": refused}


# --- OsmAnd / Traccar client protocol ----------------------------------------------------
def _bad(message: str, code: int = 400, error: str = "invalid_input") -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=code)


def _number(params: dict[str, str], *names: str) -> float | None:
    for name in names:
        value = params.get(name)
        if value not in (None, ""):
            number = float(value)  # ValueError: the caller answers 400
            if not math.isfinite(number):
                raise ValueError(f"{name} is not a finite number")
            return number
    return None


def osmand_time(value: str | None, now: datetime) -> datetime:
    """OsmAnd's ``timestamp``: Unix seconds or milliseconds (as Traccar reads it: a number
    below 2^31 is seconds), or an ISO 8601 / ``YYYY-MM-DD HH:MM:SS`` time (UTC if it has no
    offset). None: now."""
    if value in (None, ""):
        return now
    assert value is not None
    text_ = value.strip()
    if text_.lstrip("-").replace(".", "", 1).isdigit():
        number = float(text_)
        seconds = number if number < 2**31 else number / 1000.0
        return datetime.fromtimestamp(seconds, UTC)
    at = datetime.fromisoformat(text_.replace(" ", "T", 1).replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def osmand_fix(params: dict[str, str], window_: Window, now: datetime) -> tuple[str, Fix]:
    """The tracker's id and its fix from the protocol's parameters (query or form)."""
    device = params.get("id") or params.get("deviceid") or ""
    if not device:
        raise BadFix("id (the device's id) is required")
    if "location" in params and "lat" not in params:
        lat_text, _, lon_text = params["location"].partition(",")
        params = {**params, "lat": lat_text, "lon": lon_text}
    try:
        lat = _number(params, "lat", "latitude")
        lon = _number(params, "lon", "longitude")
        knots = _number(params, "speed")
        heading = _number(params, "bearing", "heading")
        altitude = _number(params, "altitude")
        accuracy = _number(params, "accuracy")
        battery = _number(params, "batt", "battery")
        at = osmand_time(params.get("timestamp"), now)
    except (ValueError, OverflowError, OSError) as exc:
        raise BadFix(f"a parameter is not a number or a time: {exc}") from None
    if lat is None or lon is None:
        raise BadFix("lat and lon are required")
    if params.get("valid", "true").lower() in ("false", "0"):
        raise BadFix("the tracker says this fix is not valid")
    fix = make_fix(
        0,
        lon,
        lat,
        at,
        times=window_,
        source="osmand",
        speed_mps=None if knots is None else knots * KNOT_MPS,
        heading_deg=heading,
        accuracy_m=accuracy,
        altitude_m=altitude,
        battery_pct=battery,
        now=now,
    )
    return device, fix


def osmand_json(body: dict[str, Any]) -> dict[str, str]:
    """Traccar Client's JSON body (``{"device_id", "location": {"timestamp", "coords":
    {...}, "battery": {"level"}}}``, speed in m/s there) as the query's parameters."""
    location = body.get("location") or {}
    coords = location.get("coords") or {}
    battery = location.get("battery") or {}
    speed = coords.get("speed")
    params = {
        "id": body.get("device_id"),
        "lat": coords.get("latitude"),
        "lon": coords.get("longitude"),
        "timestamp": location.get("timestamp"),
        "speed": None if speed is None or speed < 0 else float(speed) / KNOT_MPS,
        "bearing": coords.get("heading") if (coords.get("heading") or 0) >= 0 else None,
        "altitude": coords.get("altitude"),
        "accuracy": coords.get("accuracy"),
        "batt": None if battery.get("level") is None else float(battery["level"]) * 100.0,
    }
    return {k: str(v) for k, v in params.items() if v is not None}


_OSMAND = {
    "status_code": status.HTTP_200_OK,
    "response_class": Response,
    "tags": ["units"],
    "responses": {
        200: {"description": "taken (empty body)"},
        400: {"description": "a parameter is missing or wrong"},
        403: {"description": "unknown or revoked device, or an address it may not use"},
    },
}


@router.get("/avl/osmand", name="osmand_get", **_OSMAND)  # type: ignore[arg-type]
@router.post("/avl/osmand", name="osmand_post", **_OSMAND)  # type: ignore[arg-type]
async def osmand(request: Request) -> Response:
    """The OsmAnd / Traccar client protocol: ``?id=DEVICE&lat=&lon=&timestamp=&speed=
    &bearing=&altitude=&accuracy=&batt=`` in the query (GET or POST) or a form body, or
    Traccar Client's JSON body. ``speed`` is in knots, as Traccar reads it. ``id`` is the
    device's id from ``emergency device add``: a secret, never logged. 200 once the fix
    is committed."""
    params = dict(request.query_params)
    if request.method == "POST":
        raw = await request.body()
        if len(raw) > OSMAND_MAX_BYTES:
            return _bad(f"body over {OSMAND_MAX_BYTES} bytes", 413, "payload_too_large")
        kind = request.headers.get("content-type", "")
        try:
            if raw and "json" in kind:
                loaded = json.loads(raw)
                if not isinstance(loaded, dict):
                    return _bad("the JSON body must be an object")
                params = {**osmand_json(loaded), **params}
            elif raw:
                params = {**dict(parse_qsl(raw.decode("utf-8"))), **params}
        except (ValueError, TypeError, AttributeError):
            return _bad("the body is neither a form nor Traccar Client's JSON")
    settings: Settings = request.app.state.settings
    try:
        device, fix = osmand_fix(params, times(settings), datetime.now(UTC))
    except BadFix as exc:
        return _bad(str(exc))
    fix.device_hash = device_hash(device)
    fix.address = request.client.host if request.client else None
    try:
        (outcome,) = await writer(request).store_async([fix])
    except Exception:
        return _bad("positions could not be stored; retry", 503, "unavailable")
    if outcome.status == "refused":
        message = outcome.reason or UNKNOWN_DEVICE
        return _bad(message, 403, "forbidden")
    return Response(status_code=200)


# --- tracks for review ---------------------------------------------------------------------
class TrackProps(BaseModel):
    unit_id: int
    callsign: str
    since: datetime
    until: datetime
    times: list[datetime] = Field(description="the time of each vertex of the line")
    fixes: int = Field(description="good fixes in the window (before simplifying)")
    simplified: bool
    flagged: int = Field(description="fixes flagged as impossible jumps: not drawn")


class TrackFeature(BaseModel):
    type: Literal["Feature"]
    geometry: dict[str, Any] | None = Field(description="a LineString; null below 2 fixes")
    properties: TrackProps


@router.get("/units/{unit_id}/track", response_model=TrackFeature, tags=["units"])
def get_unit_track(
    unit_id: PathId,
    session: SessionDep,
    principal: PrincipalDep,
    since: Annotated[
        AwareDatetime | None, Query(description="default: an hour before until")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="default: now")] = None,
    tolerance_m: Annotated[
        float | None, Query(gt=0, le=10_000, description="simplify to this many metres")
    ] = None,
) -> dict[str, Any]:
    """Where the unit drove: its fixes between ``since`` and ``until`` as a GeoJSON
    LineString with the time of each vertex, simplified (Douglas-Peucker) above 2,000
    vertices or to ``tolerance_m``. At most 31 days."""
    require(principal, "read")
    require_unit(principal, unit_id)
    until_ = until or datetime.now(UTC)
    since_ = since or until_ - timedelta(hours=1)
    if since_ > until_:
        raise InvalidInput("since must not be after until")
    if until_ - since_ > MAX_SPAN:
        raise InvalidInput("a track spans at most 31 days")
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(f"unit {unit_id} does not exist")
    found = unit_track(session, unit_id, since_, until_, tolerance_m=tolerance_m)
    return track_feature(unit, since_, until_, found)
