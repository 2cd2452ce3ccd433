"""Uploaded datasets: store, describe, list, delete, and resolve a study's reference.

An upload streams into the artifact store under a temporary key (size-limited,
hashed on the way), is read once from there chunk by chunk to learn its rows
and column kinds (:class:`tuneforge.core.tables.TableProfile`), and only then
gets its row and its content key ``datasets/<sha256>``. A body that is too
large, not CSV / Parquet, or names a column the file lacks leaves nothing
behind. Datasets belong to a project like studies; another project's dataset
answers like an unknown id.

A study names an uploaded dataset by ``id`` or ``name``
(``{"source": "uploaded", "name": "churn"}``); :func:`resolve_uploaded` fills in
its fingerprint, format and default target and groups when the study is
created, so workers fetch exactly those bytes and cache them by fingerprint.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ...core.errors import Conflict, InvalidSpec, NotFound
from ...core.study import StudySpec, parse_study_spec
from ...core.tables import DatasetRecord, TableInfo, columns_to_json, profile, table_from_json
from ...core.trials import StudyState
from ..artifacts import ArtifactStore, dataset_key
from ..db.engine import Database
from ..db.models import DatasetRow, ProjectRow, StudyRow
from ..db.repository import default_project_id, utcnow

FORMATS = ("csv", "parquet")
#: Rows read per chunk while describing an upload (bounded memory for any file size).
CHUNK_ROWS = 50_000
MAX_NAME = 200
MAX_COLUMN_NAME = 500
PARQUET_MAGIC = b"PAR1"
FIELD = "objective.dataset"


# ---- upload ------------------------------------------------------------------------


def check_upload_fields(name: Any, fmt: Any, target: Any, groups: Any) -> None:
    """The query fields of an upload, before any byte is read."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise InvalidSpec(f"must be 1 to {MAX_NAME} characters, not blank", field="name")
    if name != name.strip():
        raise InvalidSpec("must not start or end with white space", field="name")
    if fmt is not None and fmt not in FORMATS:
        raise InvalidSpec(f"must be one of {list(FORMATS)} (or left out)", field="format")
    for field, value in (("target", target), ("groups", groups)):
        if value is not None and (not value or len(value) > MAX_COLUMN_NAME):
            raise InvalidSpec(
                f"must be a column name of 1 to {MAX_COLUMN_NAME} characters", field=field
            )
    if target is not None and target == groups:
        raise InvalidSpec("must differ from target", field="groups")


async def upload(
    db: Database,
    store: ArtifactStore,
    chunks: AsyncIterator[bytes],
    *,
    name: str,
    fmt: str | None,
    target: str | None,
    groups: str | None,
    project_id: int | None,
    limit: int,
) -> DatasetRecord:
    """Store an uploaded table; raises :class:`~tuneforge.api.artifacts.ArtifactTooLarge`
    past ``limit`` bytes, :class:`InvalidSpec` naming the field for a file that is not a
    table or lacks a named column, :class:`Conflict` for a name in use. Nothing stays
    stored when it fails."""
    check_upload_fields(name, fmt, target, groups)
    await run_in_threadpool(_check_name_free, db, name, project_id)
    temporary = f"datasets/incoming/{uuid.uuid4().hex}"
    stored = await store.save(temporary, chunks, limit)
    try:
        found, table = await run_in_threadpool(describe, store, temporary, fmt)
        _check_columns(table, target, groups)
        record = await run_in_threadpool(
            _insert, db, name, found, stored.sha256, stored.size_bytes, table, target, groups,
            project_id,
        )  # fmt: skip
        await run_in_threadpool(store.move, temporary, dataset_key(stored.sha256))
    except BaseException:
        await run_in_threadpool(_discard, store, temporary)
        raise
    return record


def _discard(store: ArtifactStore, key: str) -> None:
    for part in (key, f"{key}.json"):
        store.delete_tree(part)


def describe(store: ArtifactStore, key: str, fmt: str | None) -> tuple[str, TableInfo]:
    """The stored file's format (sniffed when not given) and its table, read once."""
    with store.open(key) as handle:
        magic = handle.read(len(PARQUET_MAGIC))
        handle.seek(0)
        sniffed = "parquet" if magic == PARQUET_MAGIC else "csv"
        if fmt is not None and fmt != sniffed:
            raise InvalidSpec(
                f"says {fmt}, but the body is {'not ' if fmt == 'parquet' else ''}a Parquet "
                "file; leave format out to detect it",
                field="format",
            )
        try:
            table = profile(_chunks(handle, sniffed))
        except InvalidSpec:
            raise
        except Exception as exc:
            raise _unreadable(exc, sniffed) from None
    if not table.columns:
        raise InvalidSpec("the file has no columns", field="body")
    if table.rows == 0:
        raise InvalidSpec("the file has a header but no data rows", field="body")
    return sniffed, table


def _chunks(handle: Any, fmt: str) -> Any:
    if fmt == "csv":
        import pandas as pd

        yield from pd.read_csv(handle, chunksize=CHUNK_ROWS)
        return
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(handle).iter_batches(batch_size=CHUNK_ROWS):
        yield batch.to_pandas()


def _unreadable(exc: BaseException, fmt: str) -> InvalidSpec:
    """Why the body is not a table, naming the problem, never quoting the file."""
    from ...core.datasets import _line_of

    kind = type(exc).__name__
    if isinstance(exc, UnicodeDecodeError):
        problem = f"is not UTF-8 text (is it really a {fmt} file?)"
    elif kind == "EmptyDataError":
        problem = "is empty"
    elif kind == "ParserError":
        problem = f"is not a well-formed CSV{_line_of(exc)}"
    else:
        problem = f"cannot be read as {fmt} ({kind})"
    return InvalidSpec(f"the uploaded file {problem}", field="body")


def _check_columns(table: TableInfo, target: str | None, groups: str | None) -> None:
    for field, name in (("target", target), ("groups", groups)):
        if name is not None and table.column(name) is None:
            raise InvalidSpec(
                f"no column {name!r} in the file (it has {len(table.columns)}; names are "
                "case-sensitive)",
                field=field,
            )


def _check_name_free(db: Database, name: str, project_id: int | None) -> None:
    with db.read() as session:
        existing = session.scalar(_by_name(session, name, project_id))
        if existing is not None:
            raise _taken(name, existing.id)


def _taken(name: str, ident: int) -> Conflict:
    return Conflict(
        f"a dataset named {name!r} already exists (id {ident}); choose another name or "
        "delete it first",
        field="name",
        details={"dataset_id": ident},
    )


def _by_name(session: Session, name: str, project_id: int | None) -> Any:
    project = project_id if project_id is not None else default_project_id(session)
    return select(DatasetRow).where(DatasetRow.project_id == project, DatasetRow.name == name)


def _insert(
    db: Database,
    name: str,
    fmt: str,
    sha256: str,
    size: int,
    table: TableInfo,
    target: str | None,
    groups: str | None,
    project_id: int | None,
) -> DatasetRecord:
    with db.write() as session:
        project = project_id if project_id is not None else default_project_id(session)
        existing = session.scalar(_by_name(session, name, project))
        if existing is not None:
            raise _taken(name, existing.id)
        row = DatasetRow(
            project_id=project,
            name=name,
            format=fmt,
            sha256=sha256,
            size_bytes=size,
            rows=table.rows,
            columns=columns_to_json(table),
            target=target,
            groups=groups,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return to_record(session, row)


def to_record(session: Session, row: DatasetRow) -> DatasetRecord:
    """The row as a core value object."""
    project = session.get(ProjectRow, row.project_id)
    return DatasetRecord(
        id=row.id,
        name=row.name,
        project=project.name if project is not None else "default",
        format=row.format,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        table=table_from_json(row.columns, row.rows),
        target=row.target,
        groups=row.groups,
        created_at=row.created_at,
    )


# ---- read, list, delete ------------------------------------------------------------


def _row(session: Session, dataset_id: int, project_id: int | None) -> DatasetRow:
    row = session.get(DatasetRow, dataset_id)
    if row is None or (project_id is not None and row.project_id != project_id):
        raise NotFound(f"dataset {dataset_id} does not exist", field="dataset_id")
    return row


def get_dataset(db: Database, dataset_id: int, project_id: int | None) -> DatasetRecord:
    """One dataset of ``project_id`` (None: any project); 404 otherwise."""
    with db.read() as session:
        return to_record(session, _row(session, dataset_id, project_id))


def list_datasets(
    db: Database, *, name: str | None, after_id: int | None, page_size: int, project_id: int | None
) -> tuple[list[DatasetRecord], int | None]:
    """A page of datasets by id (only ``project_id``'s when given)."""
    with db.read() as session:
        stmt = select(DatasetRow)
        if project_id is not None:
            stmt = stmt.where(DatasetRow.project_id == project_id)
        if name is not None:
            stmt = stmt.where(DatasetRow.name == name)
        if after_id is not None:
            stmt = stmt.where(DatasetRow.id > after_id)
        rows = session.scalars(stmt.order_by(DatasetRow.id).limit(page_size + 1)).all()
        more = len(rows) > page_size
        rows = rows[:page_size]
        return [to_record(session, r) for r in rows], (rows[-1].id if more and rows else None)


def delete_dataset(
    db: Database, store: ArtifactStore, dataset_id: int, project_id: int | None
) -> None:
    """Delete a dataset no unfinished study uses (409 naming them otherwise); its bytes
    go too unless another dataset has the same content."""
    with db.write() as session:
        row = _row(session, dataset_id, project_id)
        users = _studies_using(session, row)
        if users:
            raise Conflict(
                f"dataset {dataset_id} is used by unfinished studies {users}; complete or "
                "delete them first",
                field="dataset_id",
                details={"study_ids": users},
            )
        sha = row.sha256
        session.delete(row)
    with db.read() as session:
        shared = session.scalar(select(func.count()).where(DatasetRow.sha256 == sha))
    if not shared:
        _discard(store, dataset_key(sha))


def _studies_using(session: Session, row: DatasetRow) -> list[int]:
    """Ids of the project's studies that are not completed and name this dataset."""
    studies = session.execute(
        select(StudyRow.id, StudyRow.spec).where(
            StudyRow.project_id == row.project_id, StudyRow.state != StudyState.COMPLETED.value
        )
    ).all()
    return [ident for ident, spec in studies if _names_dataset(spec, row.id)]


def _names_dataset(spec: Mapping[str, Any], dataset_id: int) -> bool:
    dataset = ((spec or {}).get("objective") or {}).get("dataset") or {}
    return dataset.get("source") == "uploaded" and dataset.get("id") == dataset_id


# ---- a study's reference -----------------------------------------------------------


def resolve_uploaded(db: Database, spec: StudySpec, project_id: int | None) -> StudySpec:
    """``spec`` with its uploaded dataset (named by id or name) filled in: id, name,
    fingerprint, format, and the dataset's target and groups when the spec names none.
    Other specs come back as they are."""
    dataset = _uploaded_reference(spec)
    if dataset is None:
        return spec
    record = find_for_spec(db, dataset, project_id)
    resolved = {
        **record.reference(),
        "target": dataset.get("target") or record.target,
        "groups": dataset.get("groups") or record.groups,
        "features": dataset.get("features"),
    }
    assert spec.objective is not None
    objective = {**spec.objective, "dataset": {k: v for k, v in resolved.items() if v is not None}}
    return parse_study_spec({**spec.to_dict(), "objective": objective})


def _uploaded_reference(spec: StudySpec) -> Mapping[str, Any] | None:
    objective = spec.objective
    if not objective or objective.get("kind") != "sklearn":
        return None
    dataset = objective["dataset"]
    return dataset if dataset.get("source") == "uploaded" else None


def find_for_spec(
    db: Database, dataset: Mapping[str, Any], project_id: int | None
) -> DatasetRecord:
    """The dataset a spec names (by id, else name), in the caller's project; 422 naming
    the field when there is none or its content is not the fingerprint the spec gives."""
    with db.read() as session:
        if dataset.get("id") is not None:
            row = session.get(DatasetRow, dataset["id"])
            project = project_id if project_id is not None else default_project_id(session)
            if row is None or row.project_id != project:
                raise InvalidSpec(
                    f"no uploaded dataset with id {dataset['id']} in this project",
                    field=f"{FIELD}.id",
                )
        else:
            row = session.scalar(_by_name(session, dataset["name"], project_id))
            if row is None:
                raise InvalidSpec(
                    f"no uploaded dataset named {dataset['name']!r} in this project "
                    "(`tuneforge datasets list` shows them)",
                    field=f"{FIELD}.name",
                )
        if dataset.get("name") is not None and dataset["name"] != row.name:
            raise InvalidSpec(
                f"dataset {row.id} is named {row.name!r}, not {dataset['name']!r}",
                field=f"{FIELD}.name",
            )
        if dataset.get("sha256") is not None and dataset["sha256"] != row.sha256:
            raise InvalidSpec(
                f"dataset {row.id} has fingerprint {row.sha256}, not the one given",
                field=f"{FIELD}.sha256",
            )
        return to_record(session, row)


def uploaded_table(db: Database, objective: Mapping[str, Any]) -> TableInfo:
    """The stored table of a resolved study's uploaded dataset (for the creation checks)."""
    with db.read() as session:
        row = session.get(DatasetRow, objective["dataset"]["id"])
        if row is None:  # deleted between resolving and checking
            raise InvalidSpec("the uploaded dataset no longer exists", field=f"{FIELD}.id")
        return table_from_json(row.columns, row.rows)


__all__ = [
    "FORMATS",
    "check_upload_fields",
    "delete_dataset",
    "describe",
    "find_for_spec",
    "get_dataset",
    "list_datasets",
    "resolve_uploaded",
    "upload",
    "uploaded_table",
]
