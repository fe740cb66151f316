"""Managing people who log in: list, disable and enable, change role, unit or password.

Every change is audited (actor, the fields before and after; never a password or its
hash). A password change or a disable bumps the user's ``token_version``, so every token
issued before it stops working (and the realtime hub closes the user's sockets).

Rules: a responder is bound to a unit (one that exists); a role other than responder
drops the unit unless one is given. The last active admin cannot be disabled or given
another role: nobody could manage users any more, short of SQL. Changes that could remove
an admin take one advisory lock, so two admins demoting each other at once cannot both
succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from command.auth import service as auth
from command.auth.models import User
from core.changes import record_change
from core.errors import Conflict, InvalidInput, NotFound
from core.query import Page, paginate
from core.security import ROLES
from resources.models import Unit

# Serialises changes that could leave no active admin (any number, any process).
_ADMIN_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('emergency.user.last_admin'))")
AUDITED = ("active", "role", "unit_id")


@dataclass(frozen=True)
class UserChange:
    """What to change; None leaves a field as it is (``unit_id``: only when
    ``unit_given`` is false, so that None can also mean "no unit")."""

    active: bool | None = None
    role: str | None = None
    unit_id: int | None = None
    unit_given: bool = False
    password: str | None = None

    def is_empty(self) -> bool:
        fields = (self.active, self.role, self.password)
        return all(f is None for f in fields) and not self.unit_given


def list_users(session: Session, *, limit: int, offset: int) -> Page[User]:
    """Users by id."""
    return paginate(session, select(User).order_by(User.id), limit=limit, offset=offset)


def user_by_name(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} not found")
    return user


def update_user(session: Session, user_id: int, change: UserChange, *, actor: str) -> User:
    """Apply ``change`` to user ``user_id`` (locked for the rest of the transaction) and
    audit it; the caller commits. Nothing is changed when anything is refused."""
    if change.is_empty():
        raise InvalidInput("nothing to change: give active, role, unit_id or password")
    user = session.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    after = _resolve(session, user, change)
    if change.password is not None:
        auth.check_password(change.password)
    if user.active and user.role == "admin" and not (after["active"] and after["role"] == "admin"):
        _keep_an_admin(session, user)
    before = {k: getattr(user, k) for k in AUDITED}
    changed = {k: v for k, v in after.items() if before[k] != v}
    revoke = change.password is not None or changed.get("active") is False
    if not changed and not revoke:
        return user
    for key, value in changed.items():
        setattr(user, key, value)
    if change.password is not None:
        user.password_hash = auth.hash_password(change.password)
    audited_before: dict[str, Any] = {k: before[k] for k in changed}
    audited_after: dict[str, Any] = dict(changed)
    if revoke:  # tokens issued before this stop working
        audited_before["token_version"] = user.token_version
        user.token_version += 1
        audited_after["token_version"] = user.token_version
    if change.password is not None:
        audited_after["password_changed"] = True
    session.flush()
    record_change(
        session,
        actor=actor,
        action="user.updated",
        entity="user",
        entity_id=user.id,
        before={"username": user.username, **audited_before},
        after={"username": user.username, **audited_after},
        topics=(),
    )
    return user


def _resolve(session: Session, user: User, change: UserChange) -> dict[str, Any]:
    """The user's active, role and unit after ``change``, checked."""
    role = change.role if change.role is not None else user.role
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if change.unit_given:
        unit_id = change.unit_id
    elif change.role is not None and role != "responder":
        unit_id = None  # a unit binds responders; another role drops it
    else:
        unit_id = user.unit_id
    if role == "responder" and unit_id is None:
        raise InvalidInput("a responder must be bound to a unit (unit_id / --unit)")
    if unit_id is not None and unit_id != user.unit_id and session.get(Unit, unit_id) is None:
        raise InvalidInput(f"unit {unit_id} does not exist")
    active = change.active if change.active is not None else user.active
    return {"active": active, "role": role, "unit_id": unit_id}


def _keep_an_admin(session: Session, user: User) -> None:
    """Refuse to disable or demote the last active admin."""
    session.execute(_ADMIN_LOCK)
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", User.active.is_(True), User.id != user.id)
    )
    if not others:
        raise Conflict(f"{user.username!r} is the last active admin: make another user admin first")


def user_dict(user: User) -> dict[str, Any]:
    """A user as the API and the CLI show it (no password hash, no token version)."""
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "unit_id": user.unit_id,
        "active": user.active,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }
