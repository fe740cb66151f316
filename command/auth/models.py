"""Users, API keys, API nonces (replay guard) and the login throttle's counters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from core.security import ROLES
from core.types import Timestamps, in_list
from resources import models as _resources  # noqa: F401 - unit: an FK target, mapped first


class ApiNonce(Base):
    """Signatures already used, kept for the clock-skew window: a replay is refused."""

    __tablename__ = "api_nonce"
    __table_args__ = (Index("ix_api_nonce_seen_at", "seen_at"),)

    signature: Mapped[str] = mapped_column(String(80), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40))
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class User(Timestamps, Base):
    __tablename__ = "user"
    __table_args__ = (
        CheckConstraint(in_list("role", ROLES), name="role"),
        CheckConstraint("role <> 'responder' OR unit_id IS NOT NULL", name="responder_unit"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id", ondelete="RESTRICT"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped by a password change or a disable: a token carries the value it was issued
    # with (claim `tv`), so every token issued before the bump stops working.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class LoginThrottle(Base):
    """Failed logins per username and per client address in the current window, shared by
    every server process (command/auth/login.py). `pending` counts checks in flight, so a burst
    cannot slip past the limit while its password hashes are being verified."""

    __tablename__ = "login_throttle"
    __table_args__ = (
        CheckConstraint("scope IN ('user', 'address')", name="scope"),
        CheckConstraint("failures >= 0 AND pending >= 0", name="counts"),
        Index("ix_login_throttle_window_started_at", "window_started_at"),
    )

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Timestamps, Base):
    """A machine client's key; the HMAC secret is kept encrypted (Fernet) at rest."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
