"""HTTP for the warning system: post CAP alerts; read them back; pre-positioning proposals."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse
from geoalchemy2.shape import to_shape
from prometheus_client import Counter, Histogram
from shapely.geometry import mapping
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from command.auth import service as auth
from command.auth.dependency import authenticated
from command.auth.service import SignedRequest, check_timestamp, check_version, request_target
from command.intake import cap
from command.intake import service as intake
from command.intake.models import Alert, AlertArea, AlertInfo
from command.intake.queue import AlertQueue, Answer, Busy, Item
from command.zones import prepositions
from core.config import Settings
from core.errors import DomainError, NotFound
from core.metrics import registry
from core.security import Principal, require
from core.web import PageDep, PathId, PrincipalDep, SessionDep, TextFilter
from gis.router import engine_of

router = APIRouter(prefix="/api", tags=["alerts"])

ALERTS = Counter(
    "alerts_received_total",
    "Warning-system alerts taken in, by what intake did (duplicate: answered again)",
    ["action"],
    registry=registry,
)
REFUSED = Counter(
    "alerts_refused_total", "Alerts refused, by error code", ["code"], registry=registry
)
BATCH_SIZE = Histogram(
    "alert_batch_size",
    "Alerts taken in per transaction (group commit, command/intake/queue.py)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=registry,
)
ALERT_WARNINGS = Counter(
    "alert_warnings_total", "Faults in optional parts of accepted alerts", registry=registry
)

CAP_EXAMPLE = """<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>GD-2026-0042</identifier><sender>warning@gd.gov.cn</sender>
  <sent>2026-11-22T08:00:00+08:00</sent><status>Actual</status><msgType>Alert</msgType>
  <scope>Public</scope>
  <info><language>zh-CN</language><category>Met</category><event>暴雨红色预警</event>
    <urgency>Immediate</urgency><severity>Extreme</severity><certainty>Observed</certainty>
    <expires>2026-11-22T20:00:00+08:00</expires><headline>暴雨红色预警</headline>
    <parameter><valueName>blocks_roads</valueName><value>true</value></parameter>
    <area><areaDesc>天河区</areaDesc>
      <polygon>23.10,113.30 23.10,113.40 23.20,113.40 23.20,113.30 23.10,113.30</polygon>
    </area></info></alert>"""

_POST_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/cap+xml": {"schema": {"type": "string"}, "example": CAP_EXAMPLE},
            "application/xml": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "identifier": "GD-2026-0043", "sender": "warning@gd.gov.cn",
                    "sent": "2026-11-22T09:00:00+08:00", "status": "Actual",
                    "msgType": "Cancel", "scope": "Public",
                    "references": "warning@gd.gov.cn,GD-2026-0042,2026-11-22T08:00:00+08:00",
                },
            },
        },
    },
    "parameters": [
        {"name": h, "in": "header", "required": True, "schema": {"type": "string"},
         "description": d}
        for h, d in (
            ("X-Api-Key", "the key id from `emergency apikey add`"),
            ("X-Timestamp", "unix seconds; within 5 minutes of the server's clock"),
            ("X-Signature", 'sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>'),
        )
    ],
}  # fmt: skip


def take_in(
    factory: sessionmaker[Session], settings: Settings, items: Sequence[Item]
) -> list[Answer | BaseException]:
    """Check, parse and take in a batch of posted alerts in one transaction (see
    :mod:`command.intake.queue`); if that fails, each alert again in its own. Per item, its
    answer or the error to answer it with."""
    BATCH_SIZE.observe(len(items))
    try:
        with factory() as session:
            results = _take_in(session, settings, items)
            session.commit()
    except Exception:  # one by one below: one bad alert fails only itself
        results = []
        for item in items:
            try:
                with factory() as session:
                    (result,) = _take_in(session, settings, [item])
                    session.commit()
            except Exception as exc:  # answered to that alert's poster
                result = exc
            results.append(result)
    for result in results:
        if isinstance(result, DomainError):
            REFUSED.labels(result.code).inc()
        elif isinstance(result, tuple):
            answer, created = result
            ALERTS.labels(answer["action"] if created else "duplicate").inc()
            if created:
                ALERT_WARNINGS.inc(len(answer["warnings"]))
    return results


def _take_in(
    session: Session, settings: Settings, items: Sequence[Item]
) -> list[Answer | BaseException]:
    callers: list[Principal | SignedRequest | Exception] = [item.caller for item in items]
    signed = [n for n, c in enumerate(callers) if isinstance(c, SignedRequest)]
    if signed:
        checked = auth.check_signed(
            session, [cast(SignedRequest, callers[n]) for n in signed],
            secret_key=settings.secret_key, skew_s=settings.api_key_clock_skew_s,
        )  # fmt: skip
        for n, result in zip(signed, checked, strict=True):
            callers[n] = result
    out: list[Answer | BaseException | None] = []
    posted: list[intake.Posted] = []
    for item, caller in zip(items, callers, strict=True):
        try:
            if isinstance(caller, Exception):
                raise caller
            assert isinstance(caller, Principal)
            require(caller, "alert.post")
            posted.append(
                intake.Posted(cap.parse(item.body, item.content_type), item.body,
                              item.content_type, caller)
            )  # fmt: skip
            out.append(None)
        except DomainError as exc:
            out.append(exc)
    taken = iter(intake.intake_many(session, posted))
    return [next(taken) if result is None else result for result in out]


async def alert_caller(request: Request) -> Principal | SignedRequest:
    """A person's bearer token is checked now; a machine's signature (``X-Api-Key``) with
    the batch its alert is taken in with: one key lookup and one nonce INSERT for all. A
    timestamp outside the window is refused at once, before queueing.

    No session for a signed post (not even an unused one): a request-scoped session is a
    sync dependency, entered and closed on the thread pool, two thread hops per post that
    wait for the GIL behind the intake thread (tens of ms at 200 alerts/s)."""
    key_id = request.headers.get("x-api-key")
    if not key_id:
        with request.app.state.sessionmaker() as session:
            return await authenticated(request, session)
    timestamp = request.headers.get("x-timestamp", "")
    version = request.headers.get("x-signature-version", "1")
    check_version(version)
    check_timestamp(timestamp, skew_s=request.app.state.settings.api_key_clock_skew_s)
    return SignedRequest(
        key_id,
        timestamp,
        request.headers.get("x-signature", ""),
        await request.body(),
        version=version,
        method=request.method,
        target=request_target(request.scope),
    )


@router.post(
    "/alerts",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_POST_DOC,
    responses={
        200: {"description": "a duplicate: the first answer again, `duplicate: true`"},
        400: {"description": "unreadable: not XML/JSON, a DTD or entity, unknown encoding"},
        401: {"description": "bad key, signature or timestamp, or a replayed signature"},
        415: {"description": "not application/cap+xml, application/xml or application/json"},
        503: {"description": "busy: retry after `Retry-After` seconds (nothing was stored)"},
        422: {"description": "a required CAP field missing or malformed; `details` name them"},
    },
)
async def post_alert(
    request: Request, caller: Annotated[Principal | SignedRequest, Depends(alert_caller)]
) -> Response:
    """Take a CAP 1.2 (or 1.1) alert, or its JSON form, from the warning system.

    201 with what it did (incidents and zones created, updated, cancelled, ended) and any
    warnings about parts that were skipped; a refused alert stores nothing. When more alerts
    arrive than can be taken in, one that waits past `EMERGENCY_ALERT_QUEUE_TIMEOUT_S` gets
    503 with `Retry-After` (nothing stored): the sender retries, signed anew."""
    if isinstance(caller, Principal):
        require(caller, "alert.post")
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    try:
        answer, created = await intake_queue(request.app).submit(body, content_type, caller)
    except Busy:
        REFUSED.labels("busy").inc()
        return JSONResponse(
            {"error": "busy", "message": "intake is at capacity; retry after 1 s"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    return JSONResponse(answer, status_code=201 if created else 200)


def intake_queue(app: Any) -> AlertQueue:
    """The app's alert queue (made on first use)."""
    queue: AlertQueue | None = getattr(app.state, "alert_queue", None)
    if queue is None:
        settings = app.state.settings
        queue = AlertQueue(
            partial(take_in, app.state.sessionmaker, settings),
            max_batch=settings.alert_batch_max,
            max_waiting=settings.alert_max_in_flight,
            timeout_s=settings.alert_queue_timeout_s,
        )
        app.state.alert_queue = queue
    return queue


def _summary(row: Alert) -> dict[str, Any]:
    return {
        "id": row.id,
        "sender": row.sender,
        "identifier": row.identifier,
        "sent": row.sent.isoformat(),
        "status": row.status,
        "msg_type": row.msg_type,
        "scope": row.scope,
        "version": row.version,
        "drill": row.drill,
        "thread_id": row.thread_id,
        "references": row.references,
        "received_at": row.received_at.isoformat(),
        "received_by": row.received_by,
        "warnings": row.warnings,
        "result": row.result,
    }


@router.get("/alerts")
def list_alerts(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    status_: Annotated[TextFilter, Query(alias="status", max_length=20)] = None,
    drill: bool | None = None,
) -> dict[str, Any]:
    """Alerts received, newest first, each with what intake did and its warnings."""
    require(principal, "read")
    stmt = select(Alert)
    if status_:
        stmt = stmt.where(Alert.status == status_)
    if drill is not None:
        stmt = stmt.where(Alert.drill.is_(drill))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(Alert.id.desc()).limit(page.limit).offset(page.offset)
    ).all()
    return {"alerts": [_summary(r) for r in rows], "total": total}


def _get(session: Session, alert_id: int) -> Alert:
    row = session.get(Alert, alert_id)
    if row is None:
        raise NotFound(f"alert {alert_id} not found")
    return row


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: PathId, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """One alert as parsed: header, info blocks, and areas with their geometry (GeoJSON)."""
    require(principal, "read")
    row = _get(session, alert_id)
    infos = session.scalars(
        select(AlertInfo).where(AlertInfo.alert_id == alert_id).order_by(AlertInfo.position)
    ).all()
    areas = session.scalars(
        select(AlertArea).where(AlertArea.alert_id == alert_id).order_by(AlertArea.id)
    ).all()
    out = _summary(row)
    out["info"] = []
    for info in infos:
        item = {
            c: getattr(info, c)
            for c in ("language", "categories", "event", "response_types", "urgency",
                      "severity", "certainty", "audience", "event_codes", "sender_name",
                      "headline", "description", "instruction", "web", "contact",
                      "parameters", "resources")
        }  # fmt: skip
        for c in ("effective", "onset", "expires"):
            value = getattr(info, c)
            item[c] = None if value is None else value.isoformat()
        item["areas"] = [
            {
                "area_desc": a.area_desc,
                "polygons": a.polygons,
                "circles": a.circles,
                "geocodes": a.geocodes,
                "altitude": a.altitude,
                "ceiling": a.ceiling,
                "geometry": None if a.geom is None else mapping(to_shape(a.geom)),
            }
            for a in areas
            if a.info_id == info.id
        ]
        out["info"].append(item)
    return out


@router.get(
    "/alerts/{alert_id}/raw",
    response_class=Response,
    responses={200: {"content": {"application/cap+xml": {}, "application/json": {}}}},
)
def get_alert_raw(alert_id: PathId, session: SessionDep, principal: PrincipalDep) -> Response:
    """The alert exactly as it was posted."""
    require(principal, "read")
    row = _get(session, alert_id)
    return Response(row.raw, media_type=row.content_type or "application/octet-stream")


@router.get("/warning-zones/{zone_id}/suggestions", tags=["warning zones"])
def zone_suggestions(
    zone_id: PathId,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    units: Annotated[int, Query(ge=1, le=50)] = 5,
    shelters: Annotated[int, Query(ge=0, le=50)] = 5,
) -> JSONResponse:
    """A proposal, not an action: units to pre-position (nearest available by road, outside
    the zone, filling the zone type's response plan) at a staging point just outside it, and
    open shelters outside it with room, nearest first."""
    require(principal, "read")
    body = prepositions.suggest(
        session, engine_of(request), zone_id, units=units, shelters=shelters
    )
    return JSONResponse(body)
