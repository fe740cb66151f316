"""Reserving stock and holding shelter space (what committed plans do), against the real
database: exact amounts, refusals that change nothing, one audit row and one event per
reservation, and no overselling when two reserve the same line at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core.db import AuditedSession, make_sessionmaker
from core.errors import Conflict, InvalidInput, NotFound
from core.security import SYSTEM
from resources import service
from resources.models import Shelter, Stock, Warehouse

pytestmark = pytest.mark.db

HERE = from_shape(Point(24.94, 60.17), 4326)


def add_stock(session: Session, quantity: int, item: str = "blanket") -> Stock:
    house = Warehouse(name="Depot", geom=HERE)
    session.add(house)
    session.flush()
    stock = Stock(warehouse_id=house.id, item=item, unit_of_measure="piece", quantity=quantity)
    session.add(stock)
    session.commit()
    return stock


def add_shelter(session: Session, capacity: int, occupancy: int) -> Shelter:
    shelter = Shelter(name="Gym", capacity=capacity, occupancy=occupancy, geom=HERE)
    session.add(shelter)
    session.commit()
    return shelter


def quantity(session: Session, stock_id: int) -> int:
    return int(
        session.execute(text("SELECT quantity FROM stock WHERE id = :i"), {"i": stock_id}).one()[0]
    )


def shelter_row(session: Session, shelter_id: int) -> tuple[int, int]:
    """(occupancy, planned_arrivals) in the database."""
    row = session.execute(
        text("SELECT occupancy, planned_arrivals FROM shelter WHERE id = :i"), {"i": shelter_id}
    ).one()
    return int(row[0]), int(row[1])


def last_ids(session: Session) -> tuple[int, int]:
    """The newest event and audit row ids (what a refusal must leave as they were)."""
    return (
        int(session.scalar(text("SELECT coalesce(max(id), 0) FROM event")) or 0),
        int(session.scalar(text("SELECT coalesce(max(id), 0) FROM audit_event")) or 0),
    )


def recorded(session: Session, since: tuple[int, int]) -> list[tuple[str, str, dict[str, Any]]]:
    """(action, entity_id, after) of the audit rows since ``since``, each with one
    ``situation`` event of its action carrying ``after``."""
    events = session.execute(
        text("SELECT topic, type, payload FROM event WHERE id > :i ORDER BY id"), {"i": since[0]}
    ).all()
    audits = session.execute(
        text("SELECT action, entity_id, after FROM audit_event WHERE id > :i ORDER BY id"),
        {"i": since[1]},
    ).all()
    assert [(e.topic, e.type, e.payload) for e in events] == [
        ("situation", a.action, a.after) for a in audits
    ]
    return [(a.action, a.entity_id, dict(a.after)) for a in audits]


# --- stock --------------------------------------------------------------------------
def test_reserving_takes_exactly_the_amount_and_records_it(session: Session) -> None:
    stock = add_stock(session, 100)
    since = last_ids(session)
    got = service.reserve_stock(session, stock.warehouse_id, "blanket", 30, principal=SYSTEM)
    assert (got.id, got.quantity) == (stock.id, 70)
    session.commit()
    assert quantity(session, stock.id) == 70
    after = {"warehouse_id": stock.warehouse_id, "item": "blanket", "reserved": 30, "left": 70}
    assert recorded(session, since) == [("stock.reserved", str(stock.id), after)]
    # All that is left, to the last piece.
    service.reserve_stock(session, stock.warehouse_id, "blanket", 70, principal=SYSTEM)
    session.commit()
    assert quantity(session, stock.id) == 0


@pytest.mark.parametrize("amount", [101, 1_000_000])
def test_reserving_more_than_there_is_is_refused_and_changes_nothing(
    session: Session, amount: int
) -> None:
    stock = add_stock(session, 100)
    since = last_ids(session)
    with pytest.raises(Conflict, match="has 100 piece of blanket, not"):
        service.reserve_stock(session, stock.warehouse_id, "blanket", amount, principal=SYSTEM)
    session.commit()
    assert quantity(session, stock.id) == 100
    assert last_ids(session) == since


def test_reserving_from_an_unknown_line_is_refused(session: Session) -> None:
    stock = add_stock(session, 100)
    since = last_ids(session)
    with pytest.raises(NotFound, match="warehouse 999999999 not found"):
        service.reserve_stock(session, 999_999_999, "blanket", 1, principal=SYSTEM)
    with pytest.raises(NotFound, match=f"warehouse {stock.warehouse_id} has no tent"):
        service.reserve_stock(session, stock.warehouse_id, "tent", 1, principal=SYSTEM)
    for amount in (0, -5):
        with pytest.raises(InvalidInput):
            service.reserve_stock(session, stock.warehouse_id, "blanket", amount, principal=SYSTEM)
    session.commit()
    assert quantity(session, stock.id) == 100
    assert last_ids(session) == since


# --- shelter space ------------------------------------------------------------------
def test_holding_space_adds_planned_arrivals_up_to_capacity(session: Session) -> None:
    shelter = add_shelter(session, capacity=100, occupancy=10)
    since = last_ids(session)
    got = service.hold_shelter_space(session, shelter.id, 50, principal=SYSTEM)
    assert got.planned_arrivals == 50
    session.commit()
    assert shelter_row(session, shelter.id) == (10, 50)  # occupancy: people already there
    with pytest.raises(Conflict, match=f"shelter {shelter.id} has room for 40, not 41"):
        service.hold_shelter_space(session, shelter.id, 41, principal=SYSTEM)
    service.hold_shelter_space(session, shelter.id, 40, principal=SYSTEM)  # to the last bed
    session.commit()
    assert shelter_row(session, shelter.id) == (10, 90)
    with pytest.raises(Conflict, match="has room for 0, not 1"):
        service.hold_shelter_space(session, shelter.id, 1, principal=SYSTEM)
    session.commit()
    assert shelter_row(session, shelter.id) == (10, 90)
    assert recorded(session, since) == [
        ("shelter.arrivals_planned", str(shelter.id),
         {"shelter_id": shelter.id, "added": 50, "planned_arrivals": 50}),
        ("shelter.arrivals_planned", str(shelter.id),
         {"shelter_id": shelter.id, "added": 40, "planned_arrivals": 90}),
    ]  # fmt: skip


def test_holding_space_in_an_unknown_shelter_is_refused(session: Session) -> None:
    shelter = add_shelter(session, capacity=10, occupancy=0)
    since = last_ids(session)
    with pytest.raises(NotFound, match="shelter 999999999 not found"):
        service.hold_shelter_space(session, 999_999_999, 1, principal=SYSTEM)
    with pytest.raises(InvalidInput):
        service.hold_shelter_space(session, shelter.id, 0, principal=SYSTEM)
    session.commit()
    assert shelter_row(session, shelter.id) == (0, 0)
    assert last_ids(session) == since


# --- at once ------------------------------------------------------------------------
def _drop_warehouse(engine: Engine, warehouse_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM stock WHERE warehouse_id = :w"), {"w": warehouse_id})
        conn.execute(text("DELETE FROM warehouse WHERE id = :w"), {"w": warehouse_id})


def race(engine: Engine, workers: int, work: Callable[[Session], object]) -> list[str]:
    """``work`` in ``workers`` threads at once, each in a session of its own that commits;
    the outcomes, "ok" or "conflict"."""
    sessions = make_sessionmaker(engine)
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        with sessions() as s:
            barrier.wait()
            try:
                work(s)
                s.commit()
                outcome = "ok"
            except Conflict:
                s.rollback()
                outcome = "conflict"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sorted(outcomes)


@pytest.fixture
def committed_stock(engine: Engine) -> Iterator[Stock]:
    with make_sessionmaker(engine)() as s:
        stock = add_stock(s, 100, item="tent")
    yield stock
    _drop_warehouse(engine, stock.warehouse_id)


def test_concurrent_reservations_do_not_oversell(engine: Engine, committed_stock: Stock) -> None:
    """Six take 30 of the same 100 at once: three get theirs, three are refused, 10 left."""
    stock = committed_stock
    outcomes = race(
        engine,
        6,
        lambda s: service.reserve_stock(s, stock.warehouse_id, "tent", 30, principal=SYSTEM),
    )
    assert outcomes == ["conflict"] * 3 + ["ok"] * 3
    with AuditedSession(engine) as s:
        assert quantity(s, stock.id) == 10
        lefts = s.execute(
            text(
                "SELECT after->>'left' FROM audit_event WHERE action = 'stock.reserved'"
                " AND entity_id = :i ORDER BY id"
            ),
            {"i": str(stock.id)},
        ).scalars()
        assert [int(x) for x in lefts] == [70, 40, 10]


def test_concurrent_holds_do_not_overfill_a_shelter(engine: Engine) -> None:
    with make_sessionmaker(engine)() as s:
        shelter = add_shelter(s, capacity=50, occupancy=5)
    try:
        outcomes = race(
            engine, 5, lambda s: service.hold_shelter_space(s, shelter.id, 20, principal=SYSTEM)
        )
        assert outcomes == ["conflict"] * 3 + ["ok"] * 2
        with AuditedSession(engine) as s:
            assert shelter_row(s, shelter.id) == (5, 40)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM shelter WHERE id = :i"), {"i": shelter.id})


def test_a_reservation_reads_the_line_as_it_is_now(engine: Engine, committed_stock: Stock) -> None:
    """A line the session loaded before is read again under the lock: what another
    transaction took meanwhile is not reserved twice."""
    stock = committed_stock
    sessions = make_sessionmaker(engine)
    with sessions() as mine:
        loaded = mine.get(Stock, stock.id)
        assert loaded is not None and loaded.quantity == 100
        with sessions() as other:
            service.reserve_stock(other, stock.warehouse_id, "tent", 80, principal=SYSTEM)
            other.commit()
        with pytest.raises(Conflict, match="has 20 piece of tent, not 30"):
            service.reserve_stock(mine, stock.warehouse_id, "tent", 30, principal=SYSTEM)
        assert loaded.quantity == 20
        mine.rollback()
