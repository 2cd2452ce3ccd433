"""Migrations: one head, upgrade from empty on both databases, models match migrations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from tests.conftest import temporary_pg_database
from tuneforge.api.db.engine import build_engine
from tuneforge.api.db.migrate import (
    SchemaOutdated,
    alembic_config,
    check_schema,
    current_revision,
    head_revision,
    upgrade,
)
from tuneforge.api.db.models import Base


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with temporary_pg_database("tuneforge_mig") as url:
        yield url


def test_exactly_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    assert head_revision() == script.get_heads()[0]


def test_upgrade_from_empty_then_models_match(empty_db: str) -> None:
    engine = build_engine(empty_db)
    try:
        with pytest.raises(SchemaOutdated, match="tuneforge db upgrade"):
            check_schema(engine, empty_db)
        upgrade(empty_db)
        assert current_revision(engine) == head_revision()
        check_schema(engine, empty_db)
        tables = set(inspect(engine).get_table_names())
        assert {"projects", "studies", "trials", "measurements"} <= tables
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
            assert diff == [], f"models and migrations differ: {diff}"
            projects = conn.execute(text("SELECT name FROM projects")).scalars().all()
            assert projects == ["default"]
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(empty_db: str) -> None:
    upgrade(empty_db)
    engine = build_engine(empty_db)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(empty_db)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert current_revision(engine) is None
        upgrade(empty_db)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_each_upgrade_keeps_existing_data(empty_db: str) -> None:
    upgrade(empty_db, "0001")
    engine = build_engine(empty_db)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO studies (project_id, name, state, spec, trial_counter, "
                    "search_exhausted, version, created_at, updated_at) VALUES "
                    "(1, 'old', 'active', '{}', 3, false, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(text("DELETE FROM studies WHERE name = 'old'"))
            conn.execute(
                text(
                    "INSERT INTO studies (project_id, name, state, spec, trial_counter, "
                    "search_exhausted, version, created_at, updated_at) VALUES "
                    "(1, 'kept', 'active', '{}', 3, false, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        upgrade(empty_db)
        with engine.begin() as conn:
            row = conn.execute(text("SELECT id, name, managed FROM studies")).one()
            assert row.name == "kept" and row.managed in (False, 0) and row.id == 2
            conn.execute(text("DELETE FROM studies"))
            conn.execute(
                text(
                    "INSERT INTO studies (project_id, name, state, spec, trial_counter, "
                    "search_exhausted, version, created_at, updated_at) VALUES "
                    "(1, 'new', 'active', '{}', 0, false, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            new_id = conn.execute(text("SELECT id FROM studies")).scalar_one()
            assert new_id == 3, "a deleted study's id was handed out again"
    finally:
        engine.dispose()


def test_study_summary_is_filled_from_existing_trials(empty_db: str) -> None:
    """0007 counts each study's trials per state and sets its history version; the best
    trials stay unknown (NULL) until the service computes them."""
    upgrade(empty_db, "0006_datasets")
    engine = build_engine(empty_db)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO studies (id, project_id, name, state, spec, trial_counter, "
                    "search_exhausted, version, managed, created_at, updated_at) VALUES "
                    "(1, 1, 's', 'active', '{}', 4, false, 9, false, CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                )
            )
            for number, state, seq in [
                (0, "completed", 3),
                (1, "completed", 7),
                (2, "failed", 5),
                (3, "active", None),
            ]:
                conn.execute(
                    text(
                        "INSERT INTO trials (study_id, number, state, params, attempt, "
                        "metadata, finished_seq, created_at, updated_at) VALUES (1, :n, :s, "
                        "'{}', 0, '{}', :q, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"n": number, "s": state, "q": seq},
                )
        upgrade(empty_db)
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT n_completed, n_failed, n_active, n_paused, history_version, "
                    "best_trials FROM studies WHERE id = 1"
                )
            ).one()
        assert tuple(row) == (2, 1, 1, 0, 7, None)
    finally:
        engine.dispose()
