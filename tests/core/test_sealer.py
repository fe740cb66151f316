"""Sealing after commit, with real commits in a database of this module's own: writers do
not wait for each other, the chain and each topic's seqs have no gaps, checkpoints catch a
chain cut short."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from command.migrate import upgrade
from core import audit, audit_verify, changes, checkpoint, sealer
from core.changes import record_change
from core.db import AuditedSession, make_sessionmaker, sqlalchemy_url
from tests.support.db import create_database, drop_database


@pytest.fixture(scope="module")
def own_url(database_url: str) -> Iterator[str]:
    del database_url  # skip or fail like the other database tests
    url = create_database("emergency_sealer")
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="module")
def own_db(own_url: str) -> Iterator[Engine]:
    engine = create_engine(sqlalchemy_url(own_url), pool_size=12, max_overflow=4)
    yield engine
    engine.dispose()


def _sealer(url: str, poll_s: float) -> sealer.Sealer:
    """A sealer on its own connection, as the server makes one."""
    return sealer.Sealer(create_engine(sqlalchemy_url(url)), changes.keyring(), poll_s=poll_s)


@pytest.fixture
def running(own_url: str) -> Iterator[sealer.Sealer]:
    worker = _sealer(own_url, 0.2)
    worker.start()
    yield worker
    worker.stop()


def _change(session: Session, n: int, topics: tuple[str, ...] = ("t:seal",)) -> None:
    record_change(
        session,
        actor="user:test",
        action="thing.changed",
        entity="thing",
        entity_id=n,
        before=None,
        after={"n": n},
        topics=topics,
    )


def _report(engine: Engine, folder: Path | None = None) -> audit_verify.Report:
    with AuditedSession(engine) as session:
        return audit_verify.verify(session, changes.keyring(), checkpoint_dir=folder)


def _seqs(engine: Engine, topic: str) -> list[int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT seq FROM event WHERE topic = :t ORDER BY seq"), {"t": topic}
        )
        return [int(r[0]) for r in rows]


def test_an_open_writer_does_not_delay_another_writers_commit(own_db, running):
    """A writer has staged its change and holds its transaction open; another writer's
    commit, and the seal of its change, go through meanwhile. (With one chain lock held
    from the first write to the commit, the second writer waited for the first.)"""
    sessions = make_sessionmaker(own_db, info={changes.SEALER: running})
    slow = sessions()
    _change(slow, 1, topics=("t:open",))
    changes.write_pending(slow)  # staged in its open transaction, as at commit
    done = threading.Event()
    took: list[float] = []

    def other_writer() -> None:
        start = time.perf_counter()
        with sessions() as s:
            _change(s, 2, topics=("t:open",))
            s.commit()  # returns once its change is sealed
        took.append(time.perf_counter() - start)
        done.set()

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        assert done.wait(3.0), "the second writer waited for the first one's transaction"
        assert took[0] < 1.0
        with own_db.connect() as conn:
            seen = conn.execute(
                text("SELECT payload FROM event WHERE topic = 't:open' ORDER BY seq")
            ).scalars()
            assert list(seen) == [{"n": 2}]  # sealed, before the open writer's
        slow.commit()
        assert running.seal()
        assert [p["n"] for p in _payloads(own_db, "t:open")] == [2, 1]  # commit order
        assert _seqs(own_db, "t:open") == [1, 2]
    finally:
        slow.close()
        thread.join(10)
    assert _report(own_db).ok


def _payloads(engine: Engine, topic: str) -> list[dict]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT payload FROM event WHERE topic = :t ORDER BY seq"), {"t": topic}
            ).scalars()
        )


def test_concurrent_writers_make_one_chain_and_gap_free_seqs(own_url, own_db, running):
    """8 writers x 40 commits, two topics each (a shared one and their own), sealed by
    two sealers (as by two server processes): every change once, seqs 1..N per topic,
    the chain intact, nothing left pending."""
    second = _sealer(own_url, 0.2)
    second.start()
    writers, commits = 8, 40
    before = len(_seqs(own_db, "t:shared"))
    errors: list[BaseException] = []

    def write(w: int) -> None:
        sessions = make_sessionmaker(own_db, info={changes.SEALER: (running, second)[w % 2]})
        try:
            for i in range(commits):
                with sessions() as s:
                    _change(s, w * 1000 + i, topics=("t:shared", f"t:w{w}"))
                    s.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    second.stop()
    assert not errors
    shared = _seqs(own_db, "t:shared")
    assert shared == list(range(1, before + writers * commits + 1))
    for w in range(writers):
        assert _seqs(own_db, f"t:w{w}") == list(range(1, commits + 1))
        ns = [p["n"] for p in _payloads(own_db, f"t:w{w}")]
        assert ns == [w * 1000 + i for i in range(commits)]  # a writer's own order kept
    report = _report(own_db)
    assert report.ok and report.pending == 0


def test_a_rolled_back_change_leaves_nothing(own_db, running):
    sessions = make_sessionmaker(own_db, info={changes.SEALER: running})
    with sessions() as s:
        _change(s, 1, topics=("t:rollback",))
        s.flush()
        s.rollback()
        s.commit()
    assert running.seal()
    assert _seqs(own_db, "t:rollback") == []


def _stage_without_sealing(engine: Engine, n: int) -> None:
    """A writer that committed and died before any pass sealed its change."""
    with AuditedSession(engine) as s:
        _change(s, n, topics=("t:crash",))
        changes.write_pending(s)
        s.commit()  # nothing left to stage: no seal in this commit


def test_unsealed_rows_are_pending_not_tampering_and_the_poll_seals_them(own_url, own_db):
    _stage_without_sealing(own_db, 1)
    report = _report(own_db)
    assert report.ok
    assert report.pending >= 1 and report.pending_oldest_s is not None
    worker = _sealer(own_url, 0.1)
    worker.start()  # no request: its poll finds the row
    try:
        deadline = time.monotonic() + 3
        while _report(own_db).pending and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert _report(own_db).pending == 0
    assert _seqs(own_db, "t:crash")[-1:] == [len(_seqs(own_db, "t:crash"))]


def _cut(engine: Engine, sql: str, **params) -> None:
    with engine.begin() as conn:
        for table in ("audit_event", "audit_chain"):
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        conn.execute(text(sql), params)
        for table in ("audit_event", "audit_chain"):
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


def _commit(engine: Engine, n: int) -> None:
    with AuditedSession(engine) as s:
        for i in range(n):
            _change(s, i, topics=())
        s.commit()


def test_rows_cut_from_the_end_pass_the_links_but_not_a_checkpoint(own_url, tmp_path):
    """The probe deleted the newest 5 rows and verify passed: the links alone cannot
    see it. A checkpoint written before the cut does."""
    url = create_database("emergency_cut")
    engine = create_engine(sqlalchemy_url(url))
    try:
        upgrade(url)
        _commit(engine, 12)
        sessions = make_sessionmaker(engine)
        path = checkpoint.write_now(sessions, changes.keyring(), tmp_path)
        assert path is not None and json.loads(path.read_text())["rows"] == 12
        _commit(engine, 3)  # after the checkpoint: the cut takes these and 2 before it
        _cut(engine, "DELETE FROM audit_event WHERE id > (SELECT max(id) - 5 FROM audit_event)")
        assert _report(engine).ok  # links alone: intact
        report = _report(engine, tmp_path)
        assert not report.ok
        assert report.problems == [
            f"rows 11..12 are gone: checkpoint {path.name} of "
            f"{json.loads(path.read_text())['at']} had 12 rows up to row 12 (the chain was cut short)"
        ]
    finally:
        engine.dispose()
        drop_database(url)


@pytest.mark.db  # a database of its own, made here (no database fixture)
def test_a_relinked_chain_is_caught_by_an_older_checkpoint(tmp_path):
    """A superuser marks every row 'legacy' (plain SHA-256, which needs no key), raises
    the legacy bound and relinks the chain after editing a row: the links verify; the
    checkpoint's head no longer matches."""
    url = create_database("emergency_relink")
    engine = create_engine(sqlalchemy_url(url))
    try:
        upgrade(url)
        _commit(engine, 6)
        checkpoint.write_now(make_sessionmaker(engine), changes.keyring(), tmp_path)
        with AuditedSession(engine) as s:
            rows = list(s.scalars(text("SELECT id FROM audit_event ORDER BY id")))
            s.expunge_all()
            loaded = [s.get(audit.AuditEvent, i) for i in rows]
            for row in loaded:
                s.expunge(row)
        prev = audit.GENESIS
        with engine.begin() as conn:
            for table in ("audit_event", "audit_chain"):
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            conn.execute(text("UPDATE audit_chain SET legacy_until_id = 1000000"))
            for row in loaded:
                if row.id == rows[2]:
                    row.actor = "user:mallory"
                digest = audit.legacy_link(prev, audit.row_body(row))
                conn.execute(
                    text(
                        "UPDATE audit_event SET actor = :a, key_id = NULL, prev_hash = :p, "
                        "hash = :h WHERE id = :id"
                    ),
                    {"a": row.actor, "p": prev, "h": digest, "id": row.id},
                )
                prev = digest
            for table in ("audit_event", "audit_chain"):
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        assert _report(engine).ok  # the links, relinked, verify
        report = _report(engine, tmp_path)
        assert not report.ok
        assert report.problems[0].startswith(f"row {rows[-1]} is not the row checkpoint")
    finally:
        engine.dispose()
        drop_database(url)


def test_checkpoints_of_other_chains_are_ignored_and_forged_ones_reported(own_db, tmp_path):
    _commit(own_db, 2)
    keys = changes.keyring()
    other = checkpoint.Checkpoint(
        chain_id="00000000-0000-4000-8000-000000000000",
        last_id=99,
        head_hash="0" * 64,
        rows=99,
        at="2026-12-05T00:00:00+00:00",
        key_id=keys.current.id,
    ).with_signature(keys.current)
    checkpoint.write(other, tmp_path)
    ours = checkpoint.write_now(make_sessionmaker(own_db), keys, tmp_path)
    assert ours is not None
    report = _report(own_db, tmp_path)
    assert report.ok and report.other_chains == 1 and report.checkpoints == 1
    forged = json.loads(ours.read_text())
    forged["last_id"] += 1
    forged_path = tmp_path / ours.name.replace(
        f"{forged['last_id'] - 1:012d}", f"{forged['last_id']:012d}"
    )
    forged_path.write_text(json.dumps(forged))
    report = _report(own_db, tmp_path)
    assert not report.ok
    assert report.problems == [f"{forged_path.name}: signature does not verify (forged or damaged)"]


def test_a_checkpoint_is_written_once(own_db, tmp_path):
    sessions = make_sessionmaker(own_db)
    first = checkpoint.write_now(sessions, changes.keyring(), tmp_path)
    again = checkpoint.write_now(sessions, changes.keyring(), tmp_path)
    assert first == again and len(list(tmp_path.glob("audit-*.json"))) == 1


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str, *args: str) -> str:
    """A PostgreSQL client program's output (the newest installed)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        pytest.skip(f"{name} is not installed")
    done = subprocess.run(  # noqa: S603 - a PostgreSQL program, arguments of this test
        [str(found[-1]), *args], check=True, capture_output=True, text=True
    )
    return done.stdout


def test_the_chain_id_and_its_checkpoints_survive_a_backup_and_restore(own_url, own_db, tmp_path):
    _commit(own_db, 3)
    keys = changes.keyring()
    written = checkpoint.write_now(make_sessionmaker(own_db), keys, tmp_path / "cp")
    assert written is not None
    dump = tmp_path / "db.dump"
    _tool("pg_dump", "-Fc", "-f", str(dump), _libpq(own_url))
    copy = create_database("emergency_restored")  # PostGIS is there already
    # PostGIS's own objects come with the database (its comment and spatial_ref_sys rows
    # belong to the extension's owner): restore what is ours, other extensions included
    # (pg_trgm, which the place index's operator class needs, is created by a migration).
    ours = [
        line
        for line in _tool("pg_restore", "-l", str(dump)).splitlines()
        if not ("EXTENSION" in line and "postgis" in line) and "spatial_ref_sys" not in line
    ]
    (tmp_path / "list").write_text("\n".join(ours) + "\n")
    try:
        _tool(
            "pg_restore", "--no-owner", "-L", str(tmp_path / "list"), "-d", _libpq(copy), str(dump)
        )
        restored = create_engine(sqlalchemy_url(copy))
        try:
            with AuditedSession(restored) as s, AuditedSession(own_db) as o:
                assert audit.chain(s).id == audit.chain(o).id
            report = _report(restored, tmp_path / "cp")
            assert report.ok and report.checkpoints == 1, report.problems
        finally:
            restored.dispose()
    finally:
        drop_database(copy)
