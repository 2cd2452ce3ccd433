"""Trials record the study version of their last change (``touched_seq``).

The rules' view of a study (ASHA, Hyperband, BOHB) then reloads only the trials
touched since it was last read. Existing trials get 0: a server's first read of
a study loads them all once.

Revision ID: 0008_trial_touched_seq
Revises: 0007_study_summary
Create Date: 2026-12-03 14:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_trial_touched_seq"
down_revision: str | None = "0007_study_summary"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "trials", sa.Column("touched_seq", sa.Integer(), nullable=False, server_default="0")
    )
    op.create_index("ix_trials_study_touched", "trials", ["study_id", "touched_seq"])


def downgrade() -> None:
    op.drop_index("ix_trials_study_touched", table_name="trials")
    with op.batch_alter_table("trials") as batch_op:
        batch_op.drop_column("touched_seq")
