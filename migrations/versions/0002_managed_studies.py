"""Managed studies: task dispatches, the run flag and the held-out evaluation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:02:40.752414
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "dispatches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_dispatches_study_id_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatches")),
        sa.UniqueConstraint("task_id", name=op.f("uq_dispatches_task_id")),
    )
    op.create_index("ix_dispatches_study_claimed", "dispatches", ["study_id", "claimed_at"])
    # plain ADD COLUMN: a batch copy of the table would drop SQLite's AUTOINCREMENT
    op.add_column(
        "studies", sa.Column("managed", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("studies", sa.Column("evaluation", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("studies", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("evaluation")
        batch_op.drop_column("managed")
    op.drop_index("ix_dispatches_study_claimed", table_name="dispatches")
    op.drop_table("dispatches")
