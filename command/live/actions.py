"""Who may subscribe to what, acknowledgements of tasks, and responders' actions over the
socket (task status, positions), as the hub's CommandActions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import jwt
from pydantic import ValidationError
from sqlalchemy import BigInteger, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from command.auth import service as auth
from command.auth.models import User
from command.drills import tabletop
from command.live.snapshots import situation_snapshot, unit_snapshot
from command.tasks import service as tasks
from command.tasks.models import Task
from command.tasks.schemas import TaskStatusChange
from core.changes import SITUATION, record_change
from core.config import Settings
from core.errors import InvalidInput, NotFound, Unauthenticated
from core.security import Principal, require, require_unit
from core.types import utcnow
from realtime import store
from realtime.hub import Account, Grant, HubConfig
from resources.avl.fixes import BadFix, make_fix
from resources.avl.router import receipt
from resources.avl.router import times as avl_times
from resources.avl.writer import PositionWriter
from resources.models import Unit
from resources.schemas import PositionReport

log = logging.getLogger("emergency.live")
# The actor of what the hub's background jobs publish (held-back positions).
LIVE = Principal(kind="system", id=0, name="realtime", role="admin")


def hub_config(settings: Settings) -> HubConfig:
    return HubConfig(
        queue_max=settings.ws_queue_max,
        heartbeat_s=settings.ws_heartbeat_s,
        ack_timeout_s=settings.ws_ack_timeout_s,
        max_frame_bytes=settings.ws_max_frame_bytes,
        poll_interval_s=settings.bus_poll_interval_s,
        allowed_origins=tuple(settings.ws_allowed_origins),
        batch_linger_s=settings.ws_batch_linger_s,
        recheck_s=settings.ws_recheck_s,
    )


_ACCOUNT_COLUMNS = (User.id, User.active, User.role, User.unit_id, User.token_version)

# One statement for any number of users (an array parameter, not an IN list per size).
_ACCOUNTS = select(*_ACCOUNT_COLUMNS).where(
    User.id == any_(bindparam("ids", type_=ARRAY(BigInteger())))
)


def _still_granted(session: Session, grant: Grant) -> None:
    """Refuse an ack or action whose user has been disabled, changed role or unit, or had
    its tokens revoked since the connection said hello: read in the action's own
    transaction, so it is refused from the moment the change commits."""
    if grant.principal.kind != "user":
        return
    row = session.execute(
        select(*_ACCOUNT_COLUMNS[1:]).where(User.id == grant.principal.id)
    ).one_or_none()
    if not grant.holds(None if row is None else Account(*row)):
        raise Unauthenticated("your access has changed; log in again")


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg', 'invalid')}"


class CommandActions:
    """:class:`realtime.hub.Actions` over this app's database."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        positions: Callable[[], PositionWriter] | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self._positions = positions
        self._own_writer: PositionWriter | None = None

    def positions(self) -> PositionWriter:
        """The process's position writer (the app's; else one of these actions' own)."""
        if self._positions is not None:
            return self._positions()
        if self._own_writer is None:
            self._own_writer = PositionWriter(
                self.sessions,
                max_rows=self.settings.position_flush_rows,
                max_speed_mps=self.settings.position_max_speed_mps,
            )
        return self._own_writer

    def authenticate(self, token: str) -> Grant:
        with self.sessions() as session:
            principal = auth.principal_from_token(session, token, secret=self.settings.secret_key)
        # Verified above; read again for the expiry and the version it was issued with
        # (`tv`: absent in tokens issued before versions existed, which were version 0).
        claims = jwt.decode(token, options={"verify_signature": False})
        return Grant(principal, float(claims["exp"]), int(claims.get("tv", 0)))

    def accounts(self, user_ids: Sequence[int]) -> dict[int, Account]:
        with self.sessions() as session:
            rows = session.execute(_ACCOUNTS, {"ids": list(user_ids)})
            return {id_: Account(active, role, unit, tv) for id_, active, role, unit, tv in rows}

    def authorize(self, principal: Principal, topic: str) -> None:
        require(principal, "read")
        kind, _, ident = topic.partition(":")
        if kind == "unit":
            unit_id = int(ident)
            require_unit(principal, unit_id)
            with self.sessions() as session:
                if session.get(Unit, unit_id) is None:
                    raise NotFound(f"unit {unit_id} not found")
        elif kind == "drill":
            require(principal, "drill.watch")

    def snapshot(self, topic: str) -> tuple[int, dict[str, Any]]:
        with self.sessions() as session:
            # One consistent view: the state and the seq come from the same snapshot. Events
            # are sealed after their changes commit, so the state holds every change up to
            # that seq, and perhaps a few whose events come after it: those are sent again
            # and applied again (clients upsert by id), never missed.
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            seq = store.topic_head(session, topic)
            if topic == SITUATION:
                return seq, situation_snapshot(session)
            if topic.startswith("unit:"):
                return seq, unit_snapshot(session, int(topic.partition(":")[2]))
            # drill:<id>: a tabletop drill's own situation; a CAP Exercise thread's topic
            # (no tabletop of that id) starts empty and fills from its events.
            found = tabletop.drill_snapshot(session, int(topic.partition(":")[2]))
            return seq, found if found is not None else {"incidents": [], "tasks": []}

    def acknowledge(self, grant: Grant, topic: str, seq: int) -> dict[str, Any]:
        """Mark the tasks assigned up to ``seq`` as received by the phone, exactly once."""
        principal = grant.principal
        with self.sessions() as session:
            _still_granted(session, grant)
            previous = store.record_ack(session, topic=topic, seq=seq, actor=principal.actor)
            acknowledged: list[int] = []
            ids = store.assigned_task_ids(session, topic, previous, seq) if seq > previous else []
            if ids:
                stmt = (
                    select(Task)
                    .where(Task.id.in_(ids), Task.acknowledged_at.is_(None))
                    .order_by(Task.id)
                    .with_for_update()
                )
                for task in session.scalars(stmt):
                    before = tasks.task_dict(task)
                    task.acknowledged_at = utcnow()
                    record_change(
                        session,
                        actor=principal.actor,
                        action="task.acknowledged",
                        entity="task",
                        entity_id=task.id,
                        before=before,
                        after=tasks.task_dict(task),
                        topics=tasks.task_topics(session, task),  # a drill's on its topic
                    )
                    acknowledged.append(task.id)
            session.commit()
        return {"acknowledged_tasks": acknowledged}

    def act(self, grant: Grant, message: dict[str, Any]) -> dict[str, Any]:
        kind = message["type"]
        key = str(message["key"])
        body = {k: v for k, v in message.items() if k not in ("type", "key")}
        with self.sessions() as session:
            _still_granted(session, grant)
            try:
                if kind == "status":
                    return self._status(session, grant.principal, key, body)
                return self._position(session, grant.principal, key, body)
            except DataError:
                # The database refused a value (out of its type's range): the same message
                # can never succeed, so it must not be answered "unavailable; retry".
                log.warning("websocket %s refused by the database", kind, exc_info=True)
                raise InvalidInput(f"{kind}: a value is out of range") from None

    def _status(
        self, session: Session, principal: Principal, key: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        require(principal, "task.status")
        task_id = body.pop("task_id", None)
        if not isinstance(task_id, int) or isinstance(task_id, bool) or not 1 <= task_id < 2**63:
            raise InvalidInput("status: task_id must be a positive 64-bit integer")
        try:
            change = TaskStatusChange.model_validate(body)
        except ValidationError as exc:
            raise InvalidInput(f"status: {_validation_message(exc)}") from None
        return tasks.change_task_status_once(
            session, task_id, change.status, principal=principal, note=change.note, key=key
        )

    def _position(
        self, session: Session, principal: Principal, key: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        require(principal, "unit.position")
        unit_id = body.pop("unit_id", principal.unit_id)
        if not isinstance(unit_id, int) or isinstance(unit_id, bool) or not 1 <= unit_id < 2**63:
            raise InvalidInput(
                "position: unit_id (a positive 64-bit integer) is required; a responder's "
                "is implied"
            )
        require_unit(principal, unit_id)
        try:
            report = PositionReport.model_validate(body)
            fix = make_fix(
                unit_id,
                report.lon,
                report.lat,
                report.recorded_at or utcnow(),
                times=avl_times(self.settings),
                crs=report.crs,
                source="ws",
                speed_mps=report.speed_mps,
                heading_deg=report.heading_deg,
                accuracy_m=report.accuracy_m,
            )
        except ValidationError as exc:
            raise InvalidInput(f"position: {_validation_message(exc)}") from None
        except BadFix as exc:
            raise InvalidInput(f"position: {exc}") from None
        # Telemetry: group-committed by the process's writer (durable when answered);
        # the same recorded_at again is a duplicate, so a resent message stores once.
        session.close()  # no connection held while the group commits
        (outcome,) = self.positions().store([fix])
        answer = receipt(fix, outcome)
        return {**answer, "recorded_at": fix.recorded_at.isoformat()}
