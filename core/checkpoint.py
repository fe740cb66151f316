"""Signed checkpoints of the audit chain's head, kept outside the database.

A checkpoint says "chain C had row N with hash H at time T", signed with the audit key.
Links alone cannot show rows cut from the end of the chain (what is left still links up);
a checkpoint written before the cut can. Keep the folder where a database superuser cannot
write (another machine, append-only or WORM storage): a checkpoint protects what it names
only as long as it exists.

One file per checkpoint, ``audit-<chain id>-<last id>.json``, written once (never
overwritten) and atomically. Files of other chains in the folder are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.types import utcnow

FORMAT = "emergency-audit-checkpoint/1"
log = logging.getLogger("emergency.audit")


@dataclass(frozen=True)
class Checkpoint:
    chain_id: str
    last_id: int
    head_hash: str
    rows: int
    at: str
    key_id: str
    signature: str = ""
    format: str = FORMAT

    def unsigned(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k != "signature"}
        return audit.canonical_text(fields)

    def with_signature(self, key: audit.AuditKey) -> Checkpoint:
        return Checkpoint(**{**asdict(self), "signature": key.sign(self.unsigned())})

    @property
    def name(self) -> str:
        return f"audit-{self.chain_id}-{self.last_id:012d}.json"


def make(session: Session, keyring: audit.Keyring) -> Checkpoint | None:
    """A signed checkpoint of the chain's current head (None: the chain is empty)."""
    found = audit.head(session)
    if found is None:
        return None
    last_id, head_hash = found
    rows = session.scalar(select(func.count()).where(audit.AuditEvent.id <= last_id))
    unsigned = Checkpoint(
        chain_id=str(audit.chain(session).id),
        last_id=last_id,
        head_hash=head_hash,
        rows=int(rows or 0),
        at=utcnow().isoformat(),
        key_id=keyring.current.id,
    )
    return unsigned.with_signature(keyring.current)


def write(checkpoint: Checkpoint, directory: Path) -> Path:
    """Write ``checkpoint`` into ``directory`` (made if missing) once: an existing file of
    the same chain and row is kept as it is. Atomic: a reader never sees half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / checkpoint.name
    if path.exists():
        return path
    tmp = directory / f".{checkpoint.name}.{uuid.uuid4().hex}.tmp"
    data = json.dumps(asdict(checkpoint), indent=2, sort_keys=True) + "\n"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # fails if another process wrote it first: keep theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    with contextlib.suppress(OSError):  # the name's durability, where the OS allows
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


@dataclass(frozen=True)
class Found:
    """The checkpoints of one chain in a folder."""

    valid: list[tuple[Path, Checkpoint]]
    problems: list[str]  # files of this chain that cannot be trusted, and why
    other_chains: int  # files of other chains, ignored


def load(directory: Path, chain_id: uuid.UUID, keyring: audit.Keyring) -> Found:
    """Every checkpoint of ``chain_id`` in ``directory``, checked against the keys."""
    valid: list[tuple[Path, Checkpoint]] = []
    problems: list[str] = []
    other = 0
    if not directory.is_dir():
        return Found(valid, problems, other)
    for path in sorted(directory.glob("audit-*.json")):
        if not path.name.startswith(f"audit-{chain_id}-"):
            other += 1
            continue
        try:
            checkpoint = _read(path)
        except (OSError, ValueError, TypeError) as exc:
            problems.append(f"{path.name}: unreadable ({exc})")
            continue
        if checkpoint.chain_id != str(chain_id) or path.name != checkpoint.name:
            problems.append(f"{path.name}: its content names another chain or row")
            continue
        key = keyring.get(checkpoint.key_id)
        if key is None:
            problems.append(f"{path.name}: signed with key {checkpoint.key_id}, unknown here")
        elif checkpoint.with_signature(key).signature != checkpoint.signature:
            problems.append(f"{path.name}: signature does not verify (forged or damaged)")
        else:
            valid.append((path, checkpoint))
    valid.sort(key=lambda item: item[1].last_id)
    return Found(valid, problems, other)


def _read(path: Path) -> Checkpoint:
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} file")
    checkpoint = Checkpoint(**data)
    if not isinstance(checkpoint.last_id, int) or not isinstance(checkpoint.head_hash, str):
        raise ValueError("last_id or head_hash of the wrong type")
    datetime.fromisoformat(checkpoint.at)
    return checkpoint


def write_now(
    sessions: sessionmaker[Session], keyring: audit.Keyring, directory: Path
) -> Path | None:
    """A checkpoint of the chain's head now, written into ``directory``."""
    with sessions() as session:
        made = make(session, keyring)
    return None if made is None else write(made, directory)


async def every(
    sessions: sessionmaker[Session], keyring: audit.Keyring, directory: Path, period_s: float
) -> None:
    """Write a checkpoint every ``period_s`` (the server's job); a failure is logged and
    tried again next period. Cancel to stop: the last one is written on the way out."""
    try:
        while True:
            await asyncio.sleep(period_s)
            try:
                await asyncio.to_thread(write_now, sessions, keyring, directory)
            except Exception as exc:  # the database or the disk may be away: next period
                log.warning("audit checkpoint failed: %s", exc)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(write_now, sessions, keyring, directory)
        raise
