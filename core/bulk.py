"""Bulk INSERT and UPDATE of many rows with one constant statement: the rows travel as one
JSON parameter, unpacked by ``jsonb_to_recordset`` in the database.

For the hot paths of bulk intake (alerts, their incidents and zones, audit rows). A
multi-row ``VALUES`` (SQLAlchemy's insertmanyvalues, psycopg's executemany) has a new SQL
text for every row count: SQLAlchemy compiles it and psycopg splits it afresh each time,
and PostgreSQL parses and plans it afresh. Here the SQL text depends only on the table and
the column names, so it is compiled once per process, prepared once per connection (psycopg
prepares a statement run 5 times), and its rows cost one ``json.dumps`` between them.

Values are encoded as PostgreSQL's input functions read them: datetimes as ISO 8601,
``bytes`` as ``\\x`` hex (bytea), shapely geometries as hex EWKB with SRID 4326 (PostGIS
reads it as a geometry), JSON columns as nested JSON, lists for array columns.
:class:`RawJSON` splices JSON already encoded (an audit row's canonical text, kept byte for
byte). Python-side column defaults apply to missing columns, as in the ORM; columns with a
server default or none are left to the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import shapely
from geoalchemy2.elements import WKBElement
from geoalchemy2.shape import to_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Column, Table, TextClause, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import sqltypes

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_ORDER = "_n"  # each row's position, so identity ids follow the rows' order


class RawJSON(str):
    """JSON text to put in a row as it is (not encoded again as a string)."""


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, WKBElement):
        value = to_shape(value)
    if isinstance(value, BaseGeometry):
        return shapely.to_wkb(shapely.set_srid(value, 4326), hex=True, include_srid=True)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a bulk row")


def encode_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as one JSON array (see the module's notes on value encodings)."""
    if not any(isinstance(v, RawJSON) for row in rows for v in row.values()):
        return json.dumps(rows, default=_default, ensure_ascii=False, allow_nan=False)
    parts = []
    for row in rows:
        plain = {k: v for k, v in row.items() if not isinstance(v, RawJSON)}
        text_ = json.dumps(plain, default=_default, ensure_ascii=False, allow_nan=False)
        raw = ",".join(f"{json.dumps(k)}:{v}" for k, v in row.items() if isinstance(v, RawJSON))
        if not raw:  # this row has none: its plain text is the whole row
            parts.append(text_)
            continue
        parts.append(f"{text_[:-1]}{',' if plain else ''}{raw}}}")
    return f"[{','.join(parts)}]"


def _type_of(column: Column[Any]) -> str:
    return str(column.type.compile(dialect=_DIALECT))


def _quote(name: str) -> str:
    return str(_DIALECT.identifier_preparer.quote(name))


def _value(table: Table, name: str) -> str:
    """Column ``name`` of the row set, as the ORM would store it: ``jsonb_to_recordset``
    reads a JSON null as SQL NULL, but SQLAlchemy stores ``None`` in a JSON column as JSON
    ``null`` unless the column says ``none_as_null``; so do we."""
    column = table.c[name]
    if isinstance(column.type, sqltypes.JSON) and not column.type.none_as_null:
        return f"COALESCE(r.{_quote(name)}, CAST('null' AS {_type_of(column)}))"
    return f"r.{_quote(name)}"


_STATEMENTS: dict[tuple[Any, ...], TextClause] = {}


def _insert_sql(
    table: Table, names: tuple[str, ...], returning: tuple[str, ...], on_conflict: str | None
) -> TextClause:
    key = ("insert", table.name, names, returning, on_conflict)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        cols = ", ".join(_quote(n) for n in names)
        picked = ", ".join(_value(table, n) for n in names)
        defs = ", ".join([f"{_quote(n)} {_type_of(table.c[n])}" for n in names] + [f"{_ORDER} int"])
        # Names from the table's metadata, quoted; every value is bound (:rows).
        sql = (
            f"INSERT INTO {_quote(table.name)} ({cols}) SELECT {picked} "  # noqa: S608
            f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({defs}) ORDER BY r.{_ORDER}"
        )
        if on_conflict:
            sql += f" ON CONFLICT ON CONSTRAINT {_quote(on_conflict)} DO NOTHING"
        if returning:
            sql += " RETURNING " + ", ".join(_quote(n) for n in returning)
        stmt = text(sql)
        if returning:
            stmt = stmt.columns(*(table.c[n] for n in returning))  # type: ignore[assignment]
        _STATEMENTS[key] = stmt
    return stmt


def _with_defaults(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for column in table.columns:
        default = column.default
        if column.name in out or default is None:
            continue
        if default.is_callable:  # SQLAlchemy wraps it to take the execution context
            out[column.name] = default.arg(None)  # type: ignore[attr-defined]
        elif default.is_scalar:
            out[column.name] = default.arg  # type: ignore[attr-defined]
        else:  # a SQL expression or a sequence: not done here
            raise ValueError(f"{table.name}.{column.name}: default not supported in bulk")
    return out


def insert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    returning: Sequence[str] = (),
    on_conflict: str | None = None,
) -> list[Row[Any]]:
    """Insert ``rows`` (dicts of column name to value) in order, one statement per set of
    column names. ``on_conflict``: the name of a unique constraint; rows that would break
    it are skipped (and not returned). With ``returning``, the inserted rows' columns, in
    ``rows`` order where the table has an ``id`` identity column (it is returned too and
    orders them), else in the database's order (match them by value)."""
    if not rows:
        return []
    full = [_with_defaults(table, row) for row in rows]
    by_id = "id" in table.c
    want = tuple(dict.fromkeys(("id", *returning) if by_id else returning)) if returning else ()
    groups: dict[tuple[str, ...], list[int]] = {}
    for n, row in enumerate(full):
        groups.setdefault(tuple(sorted(row)), []).append(n)
    found: list[tuple[int, Row[Any]]] = []
    for names, members in groups.items():
        stmt = _insert_sql(table, names, want, on_conflict)
        payload = encode_rows([{**full[n], _ORDER: k} for k, n in enumerate(members)])
        result = conn.execute(stmt, {"rows": payload})
        if not want:
            continue
        if not by_id:
            found += [(0, r) for r in result]
            continue
        got = sorted(result, key=lambda r: r.id)  # identity ids follow the ORDER BY
        if on_conflict:  # skipped rows leave no gap to match by: ordered by id below
            found += [(r.id, r) for r in got]
        else:
            found += list(zip(members, got, strict=True))
    return [r for _n, r in sorted(found, key=lambda t: t[0])]


def _update_sql(
    table: Table, key: str, names: tuple[str, ...], returning: tuple[str, ...]
) -> TextClause:
    cache_key = ("update", table.name, key, names, returning)
    stmt = _STATEMENTS.get(cache_key)
    if stmt is None:
        sets = [f"{_quote(n)} = {_value(table, n)}" for n in names if n != key]
        for column in table.columns:  # SQL-side onupdate (updated_at = now()), as Core does
            onupdate = column.onupdate
            if column.name not in names and onupdate is not None:
                if not onupdate.is_clause_element:
                    raise ValueError(f"{table.name}.{column.name}: onupdate not supported")
                arg = onupdate.arg  # type: ignore[attr-defined]
                sets.append(f"{_quote(column.name)} = {arg.compile(dialect=_DIALECT)}")
        defs = ", ".join(f"{_quote(n)} {_type_of(table.c[n])}" for n in names)
        t, k = _quote(table.name), _quote(key)
        # The ANY makes the plan an index lookup of the keys whatever the table's statistics
        # say: a join with the row set alone is planned as a hash join over a whole-table
        # scan while the table is small, and the plan, cached, stays as the table grows.
        sql = (
            f"UPDATE {t} SET {', '.join(sets)} "  # noqa: S608 (names from metadata, quoted)
            f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({defs}) "
            f"WHERE {t}.{k} = r.{k} AND {t}.{k} = ANY(CAST(:keys AS {_type_of(table.c[key])}[]))"
        )
        if returning:
            sql += " RETURNING " + ", ".join(f"{t}.{_quote(n)}" for n in returning)
        stmt = text(sql)
        if returning:
            stmt = stmt.columns(*(table.c[n] for n in returning))  # type: ignore[assignment]
        _STATEMENTS[cache_key] = stmt
    return stmt


def update(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str = "id",
    returning: Sequence[str] = (),
) -> list[Row[Any]]:
    """Set each row's columns on the table's row whose ``key`` column equals the row's (one
    statement per set of column names; SQL ``onupdate`` columns set as Core sets them).
    With ``returning``, the updated rows' columns (``key`` among them) in ``rows`` order;
    a row whose key matches nothing is not in it."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        if key not in row:
            raise ValueError(f"every row needs its {key!r}")
        groups.setdefault(tuple(sorted(row)), []).append(row)
    want = tuple(dict.fromkeys((key, *returning))) if returning else ()
    found: dict[Any, Row[Any]] = {}
    for names, members in groups.items():
        result = conn.execute(
            _update_sql(table, key, names, want),
            {"rows": encode_rows(members), "keys": [row[key] for row in members]},
        )
        if want:
            found.update((getattr(r, key), r) for r in result)
    return [found[row[key]] for row in rows if row[key] in found]
