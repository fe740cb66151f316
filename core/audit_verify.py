"""``emergency audit verify``: the links, the checkpoints and the rows still to be sealed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit, checkpoint, sealer


@dataclass
class Report:
    walk: audit.Walk
    pending: int
    pending_oldest_s: float | None
    checkpoint: checkpoint.Checkpoint | None = None  # the newest of this chain, if any
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)  # what the checkpoints contradict
    other_chains: int = 0

    @property
    def ok(self) -> bool:
        return self.walk.bad_count == 0 and not self.problems

    def as_dict(self) -> dict[str, Any]:
        first = self.walk.bad[0] if self.walk.bad else None
        newest = self.checkpoint
        return {
            "ok": self.ok,
            "checked": self.walk.checked,
            "first_bad_id": first.id if first else None,
            "reason": first.reason if first else (self.problems[0] if self.problems else None),
            "bad_count": self.walk.bad_count,
            "bad_rows": [{"id": b.id, "reason": b.reason} for b in self.walk.bad],
            "legacy_rows": self.walk.legacy,
            "pending": self.pending,
            "pending_oldest_s": self.pending_oldest_s,
            "checkpoints": self.checkpoints,
            "checkpoint": None
            if newest is None
            else {"last_id": newest.last_id, "at": newest.at, "rows": newest.rows},
            "problems": self.problems,
            "other_chains": self.other_chains,
        }


def verify(
    session: Session, keyring: audit.Keyring, *, checkpoint_dir: Path | None, keep: int = 1000
) -> Report:
    """Check every link, then every checkpoint of this chain in ``checkpoint_dir``: each
    must name a row that is still there with the hash it had. With no checkpoint, the
    links alone are checked (rows cut from the end then go unseen)."""
    conn = session.connection()
    pending, oldest = sealer.pending(conn)
    report = Report(audit.walk(session, keyring, keep=keep), pending, oldest)
    if checkpoint_dir is None:
        return report
    found = checkpoint.load(checkpoint_dir, audit.chain(session).id, keyring)
    report.problems.extend(found.problems)
    report.other_chains = found.other_chains
    report.checkpoints = len(found.valid)
    if not found.valid:
        return report
    report.checkpoint = found.valid[-1][1]
    wanted = [c.last_id for _, c in found.valid]
    stored = dict(
        session.execute(
            select(audit.AuditEvent.id, audit.AuditEvent.hash).where(
                audit.AuditEvent.id.in_(wanted)
            )
        ).all()
    )
    last_id = report.walk.last_id or 0
    for path, c in found.valid:
        if c.last_id > last_id:
            report.problems.append(
                f"rows {last_id + 1}..{c.last_id} are gone: checkpoint {path.name} of {c.at} "
                f"had {c.rows} rows up to row {c.last_id} (the chain was cut short)"
            )
        elif c.last_id not in stored:
            report.problems.append(f"row {c.last_id}, named by checkpoint {path.name}, is gone")
        elif stored[c.last_id] != c.head_hash:
            report.problems.append(
                f"row {c.last_id} is not the row checkpoint {path.name} saw (rewritten)"
            )
    return report
