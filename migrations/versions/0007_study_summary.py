"""Study summary: trial counts per state, the finished history's version, the best trials.

Kept by ``api/services/lifecycle.py`` in the transaction that changes a trial, so
reading a study (or a page of studies) and planning a suggest no longer scan its
trials. Counts and ``history_version`` are filled from the trials here; the best
trials are left ``NULL`` (unknown) and computed once at the study's next completion
or read.

Revision ID: 0007_study_summary
Revises: 0006_datasets
Create Date: 2026-12-03 13:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_study_summary"
down_revision: str | None = "0006_datasets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
STATES = ("requested", "active", "stopping", "paused", "completed", "pruned", "infeasible", "failed")
COUNTERS = (*(f"n_{s}" for s in STATES), "history_version")


def upgrade() -> None:
    # plain ADD COLUMN: a batch copy of the table would drop SQLite's AUTOINCREMENT
    for name in COUNTERS:
        op.add_column(
            "studies", sa.Column(name, sa.Integer(), nullable=False, server_default="0")
        )
    op.add_column("studies", sa.Column("best_trials", JSON, nullable=True))
    for state in STATES:
        op.execute(
            f"UPDATE studies SET n_{state} = (SELECT count(*) FROM trials "
            f"WHERE trials.study_id = studies.id AND trials.state = '{state}')"
        )
    op.execute(
        "UPDATE studies SET history_version = (SELECT coalesce(max(finished_seq), 0) "
        "FROM trials WHERE trials.study_id = studies.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("studies", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("best_trials")
        for name in reversed(COUNTERS):
            batch_op.drop_column(name)
