"""user security: token versions and login throttling

`user.token_version` is bumped by a password change or a disable; tokens carry the value
they were issued with, so the tokens issued before the bump stop working.
`login_throttle` counts failed logins per username and per client address, shared by every
server process.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "user",
        sa.Column("token_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.create_table(
        "login_throttle",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("failures >= 0 AND pending >= 0", name=op.f("ck_login_throttle_counts")),
        sa.CheckConstraint("scope IN ('user', 'address')", name=op.f("ck_login_throttle_scope")),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_login_throttle")),
    )
    op.create_index("ix_login_throttle_window_started_at", "login_throttle", ["window_started_at"])


def downgrade() -> None:
    op.drop_index("ix_login_throttle_window_started_at", table_name="login_throttle")
    op.drop_table("login_throttle")
    op.drop_column("user", "token_version")
