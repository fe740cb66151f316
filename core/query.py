"""List queries: bbox filter and counted pagination, as SQL expressions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the total number of matches."""

    items: Sequence[T]
    total: int
    limit: int
    offset: int


def within_bbox(
    stmt: Select[Any], column: InstrumentedAttribute[Any], bbox: tuple[float, float, float, float]
) -> Select[Any]:
    """Keep rows whose geometry intersects the WGS-84 box (uses the GiST index)."""
    west, south, east, north = bbox
    envelope = func.ST_MakeEnvelope(west, south, east, north, 4326)
    return stmt.where(column.op("&&")(envelope), func.ST_Intersects(column, envelope))


def paginate(session: Session, stmt: Select[Any], *, limit: int, offset: int) -> Page[Any]:
    """Run ``stmt`` for one page and count all matches with the same filters."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = list(session.scalars(stmt.limit(limit).offset(offset)))
    return Page(items=items, total=int(total), limit=limit, offset=offset)


def page_body(page: Page[Any], convert: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """A non-spatial list page as JSON: items plus the OGC-style match counts."""
    items = [convert(item) for item in page.items]
    return {"items": items, "numberMatched": page.total, "numberReturned": len(items)}
