"""Generic create / read / update / list for tables with a `geom`, as GeoJSON Features.

Every write records the change (audit row + outbox event) in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from geoalchemy2.shape import from_shape, to_shape
from shapely import Geometry
from shapely.geometry import mapping
from sqlalchemy import Select, Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from core import bulk
from core.changes import SITUATION, record_change
from core.db import Base, flush, integrity_error
from core.errors import NotFound
from core.query import Page, paginate, within_bbox
from core.security import Principal


@dataclass(frozen=True)
class FeatureKind:
    """How one table is exposed: its model, entity name and the properties it shows."""

    model: type[Base]
    entity: str
    fields: tuple[str, ...]
    filters: Mapping[str, str] = field(default_factory=dict)  # query name -> column name


def json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def geometry_of(obj: Any) -> dict[str, Any] | None:
    """GeoJSON geometry of a row's `geom` (None when it has none)."""
    geom = obj.geom
    if geom is None:
        return None
    shape = geom if isinstance(geom, Geometry) else to_shape(geom)
    return dict(mapping(shape))


def feature(kind: FeatureKind, obj: Any) -> dict[str, Any]:
    """The row as a GeoJSON Feature dict."""
    return {
        "type": "Feature",
        "id": obj.id,
        "geometry": geometry_of(obj),
        "properties": {f: json_value(getattr(obj, f)) for f in kind.fields},
    }


def collection(kind: FeatureKind, page: Page[Any]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [feature(kind, obj) for obj in page.items],
        "numberMatched": page.total,
        "numberReturned": len(page.items),
    }


def get(session: Session, kind: FeatureKind, obj_id: int, *, for_update: bool = False) -> Any:
    """The row with this id, or NotFound."""
    obj = session.get(kind.model, obj_id, with_for_update=for_update)
    if obj is None:
        raise NotFound(f"{kind.entity} {obj_id} not found")
    return obj


def create(
    session: Session,
    kind: FeatureKind,
    *,
    props: Mapping[str, Any],
    geom: Geometry | None,
    principal: Principal,
    topics: tuple[str, ...] = (SITUATION,),
) -> Any:
    """Insert one row from validated properties and geometry; record the change."""
    obj = kind.model(**props)
    if geom is not None:
        # EWKB, not the WKT GeoAlchemy2 makes of plain WKB: the stored coordinates are the
        # given doubles, bit for bit (WKT text keeps 16 significant digits)
        obj.geom = from_shape(geom, srid=4326, extended=True)  # type: ignore[attr-defined]
    session.add(obj)
    flush(session)
    _record_created(session, kind, feature(kind, obj), principal, topics)
    return obj


def create_many(
    session: Session,
    kind: FeatureKind,
    items: Sequence[tuple[Mapping[str, Any], Geometry | None]],
    *,
    principal: Principal,
    topics: tuple[str, ...] = (SITUATION,),
) -> list[int]:
    """Insert many rows and record each change, as :func:`create` does one, but with one
    INSERT .. RETURNING per set of property names and no ORM objects (for bulk intake,
    where the unit of work costs more than the rows; see :mod:`core.bulk`). Returns the ids
    in ``items`` order.

    Python-side column defaults apply as in the ORM; the Features recorded carry the
    geometry as given (the database stores exactly it) and the row as inserted."""
    table = cast(Table, kind.model.__table__)
    rows = bulk.insert(
        session.connection(), table, [{**props, "geom": geom} for props, geom in items],
        returning=kind.fields,
    )  # fmt: skip
    ids = []
    for (_props, geom), row in zip(items, rows, strict=True):
        after = feature(kind, SimpleNamespace(**row._mapping, geom=geom))
        _record_created(session, kind, after, principal, topics)
        ids.append(int(row.id))
    return ids


def _record_created(
    session: Session,
    kind: FeatureKind,
    after: dict[str, Any],
    principal: Principal,
    topics: tuple[str, ...],
) -> None:
    record_change(
        session,
        actor=principal.actor,
        action=f"{kind.entity}.created",
        entity=kind.entity,
        entity_id=after["id"],
        before=None,
        after=after,
        topics=topics,
    )


def update(
    session: Session,
    kind: FeatureKind,
    obj_id: int,
    *,
    changes: Mapping[str, Any],
    geom: Geometry | None,
    principal: Principal,
    action: str | None = None,
    topics: tuple[str, ...] = (SITUATION,),
) -> Any:
    """Apply changes to one row under a row lock; record before and after."""
    obj = get(session, kind, obj_id, for_update=True)
    update_locked(
        session, kind, obj, changes=changes, geom=geom, principal=principal, action=action,
        topics=topics,
    )  # fmt: skip
    return obj


def update_locked(
    session: Session,
    kind: FeatureKind,
    obj: Any,
    *,
    changes: Mapping[str, Any],
    geom: Geometry | None,
    principal: Principal,
    action: str | None = None,
    note: str | None = None,
    topics: tuple[str, ...] = (SITUATION,),
) -> bool:
    """Change a row the caller has loaded under a row lock (see :func:`update_many_locked`).
    False (nothing recorded) if nothing changed."""
    (changed,) = update_many_locked(
        session, kind, [Change(obj, changes, geom, action, note)], principal=principal,
        topics=topics,
    )  # fmt: skip
    return changed


@dataclass(frozen=True)
class Change:
    """One locked row's change for :func:`update_many_locked`."""

    obj: Any
    changes: Mapping[str, Any]
    geom: Geometry | None = None
    action: str | None = None  # default: "<entity>.updated"
    note: str | None = None


def update_many_locked(
    session: Session,
    kind: FeatureKind,
    items: Sequence[Change],
    *,
    principal: Principal,
    topics: tuple[str, ...] = (SITUATION,),
) -> list[bool]:
    """Change rows the caller has loaded under row locks: one UPDATE .. RETURNING per set
    of column names (:func:`core.bulk.update`; no flush, no read-back), the loaded objects
    kept in step, each change recorded against its object as loaded, in ``items`` order.
    Per item, False (nothing recorded) if nothing changed."""
    if not items:
        return []
    table = cast(Table, kind.model.__table__)
    befores = [feature(kind, c.obj) for c in items]
    rows = [
        {**c.changes, **({"geom": c.geom} if c.geom is not None else {}), "id": c.obj.id}
        for c in items
    ]
    names = dict.fromkeys([*kind.fields, *(n for row in rows for n in row), "geom"])
    try:
        got = bulk.update(session.connection(), table, rows, returning=tuple(names))
    except IntegrityError as exc:
        raise integrity_error(exc) from exc
    if len(got) != len(items):
        raise NotFound(f"{kind.entity} rows changed while locked")  # cannot happen: locked
    out = []
    for c, before, row in zip(items, befores, got, strict=True):
        for name, value in row._mapping.items():
            set_committed_value(c.obj, name, value)
        shape = c.geom if c.geom is not None else c.obj.geom
        after = feature(kind, SimpleNamespace(**{**row._mapping, "id": c.obj.id, "geom": shape}))
        out.append(
            _record_updated(session, kind, c.obj.id, before, after,
                            c.action or f"{kind.entity}.updated", principal, c.note, topics)
        )  # fmt: skip
    return out


def record_update(
    session: Session,
    kind: FeatureKind,
    obj: Any,
    *,
    before: dict[str, Any],
    action: str,
    principal: Principal,
    note: str | None = None,
    topics: tuple[str, ...] = (SITUATION,),
) -> bool:
    """Flush a changed row and record it against ``before``; False if nothing changed."""
    flush(session)
    session.refresh(obj)
    after = feature(kind, obj)
    return _record_updated(session, kind, obj.id, before, after, action, principal, note, topics)


def _record_updated(
    session: Session,
    kind: FeatureKind,
    obj_id: int,
    before: dict[str, Any],
    after: dict[str, Any],
    action: str,
    principal: Principal,
    note: str | None,
    topics: tuple[str, ...],
) -> bool:
    """Record the change from ``before`` to ``after``; False (nothing recorded) if none."""
    if after == before:
        return False
    if note:
        after["properties"]["note"] = note
    record_change(
        session,
        actor=principal.actor,
        action=action,
        entity=kind.entity,
        entity_id=obj_id,
        before=before,
        after=after,
        topics=topics,
    )
    return True


def list_page(
    session: Session,
    kind: FeatureKind,
    *,
    bbox: tuple[float, float, float, float] | None,
    filters: Mapping[str, Any],
    limit: int,
    offset: int,
    extra: Sequence[Any] = (),
) -> Page[Any]:
    """Rows matching bbox, equality filters (None = no filter) and extra clauses, by id."""
    model: Any = kind.model
    stmt: Select[Any] = select(model)
    if bbox is not None:
        stmt = within_bbox(stmt, model.geom, bbox)
    for name, value in filters.items():
        if value is not None:
            stmt = stmt.where(getattr(model, kind.filters.get(name, name)) == value)
    for clause in extra:
        stmt = stmt.where(clause)
    return paginate(session, stmt.order_by(model.id), limit=limit, offset=offset)
