"""Trackers: a device is bound to one unit and sends its id with every fix (OsmAnd /
Traccar client protocol). Only the id's SHA-256 is stored.

Two kinds. ``secret``: the server draws the id (32 URL-safe characters, 192 bits) and
shows it once; whoever knows it can place the unit, so it is a credential. ``hardware``:
a tracker that cannot be given an id sends its own (an IMEI). An IMEI is printed on the
box and guessable, so such a device is weaker: it is accepted only from the networks on
its allowlist (the APN's or the gateway's addresses), and should be on one.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from ipaddress import ip_network
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.changes import record_change
from core.errors import Conflict, InvalidInput, NotFound
from core.security import Principal
from core.types import utcnow
from resources.avl.fixes import device_hash
from resources.models import Device, Unit

SECRET_BYTES = 24  # 32 URL-safe characters


def add_device(
    session: Session,
    *,
    unit_callsign: str,
    principal: Principal,
    hardware_id: str | None = None,
    allow_from: Sequence[str] = (),
    name: str | None = None,
) -> tuple[Device, str]:
    """Bind a new device to the unit; returns it and the id the tracker must send (shown
    this once). ``hardware_id``: the tracker's own id (weaker, see the module doc)."""
    unit = session.scalars(select(Unit).where(Unit.callsign == unit_callsign)).first()
    if unit is None:
        raise NotFound(f"no unit has the callsign {unit_callsign!r}")
    networks = [_network(n) for n in allow_from]
    if hardware_id is None:
        if networks:
            raise InvalidInput("--allow is for hardware ids (--id); a drawn id is a secret")
        device_id, kind, hint = secrets.token_urlsafe(SECRET_BYTES), "secret", ""
    else:
        device_id = hardware_id.strip()
        if not 4 <= len(device_id) <= 64 or not device_id.isprintable():
            raise InvalidInput("a hardware id has 4 to 64 printable characters")
        kind, hint = "hardware", "…" + device_id[-4:]
    device = Device(
        unit_id=unit.id,
        kind=kind,
        token_hash=device_hash(device_id),
        hint=hint,
        name=name,
        allow_from=networks or None,
    )
    session.add(device)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("that device id is registered already") from None
    record_change(
        session,
        actor=principal.actor,
        action="device.added",
        entity="device",
        entity_id=device.id,
        before=None,
        after=device_dict(device, unit.callsign),
        topics=(),
    )
    return device, device_id


def _network(value: str) -> str:
    try:
        return str(ip_network(value.strip(), strict=False))
    except ValueError:
        raise InvalidInput(f"not a network address: {value!r} (e.g. 10.20.0.0/16)") from None


def revoke_device(session: Session, device_id: int, *, principal: Principal) -> Device:
    device = session.get(Device, device_id, with_for_update=True)
    if device is None:
        raise NotFound(f"device {device_id} does not exist")
    if device.revoked_at is None:
        device.revoked_at = utcnow()
        session.flush()
        record_change(
            session,
            actor=principal.actor,
            action="device.revoked",
            entity="device",
            entity_id=device.id,
            before=None,
            after={"id": device.id, "unit_id": device.unit_id},
            topics=(),
        )
    return device


def list_devices(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Device, Unit.callsign).join(Unit, Unit.id == Device.unit_id).order_by(Device.id)
    ).all()
    return [device_dict(device, callsign) for device, callsign in rows]


def device_dict(device: Device, callsign: str) -> dict[str, Any]:
    """A device as listed: never its id (only a hint for hardware)."""
    return {
        "id": device.id,
        "unit": callsign,
        "unit_id": device.unit_id,
        "kind": device.kind,
        "hint": device.hint or None,
        "name": device.name,
        "allow_from": device.allow_from or [],
        "revoked_at": device.revoked_at.isoformat() if device.revoked_at else None,
        "last_seen_at": device.last_seen_at.isoformat() if device.last_seen_at else None,
    }
