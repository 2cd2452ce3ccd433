"""Wire models of uploaded datasets."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ...core.tables import DatasetRecord


class ColumnPublic(BaseModel):
    """One column: its kind as the server detected it from every row, and missing values."""

    name: str
    kind: str = Field(description="numeric, boolean, categorical or datetime")
    missing: int = Field(description="rows without a value")


class DatasetPublic(BaseModel):
    """An uploaded table; a study names it as ``{"source": "uploaded", "id": ...}``."""

    id: int
    name: str
    project: str
    format: str = Field(description="csv or parquet")
    sha256: str = Field(description="SHA-256 of the uploaded bytes: the dataset's fingerprint")
    size_bytes: int
    rows: int
    columns: list[ColumnPublic]
    target: str | None = Field(description="the column studies predict unless they name one")
    groups: str | None = Field(description="the group-label column studies use by default")
    created_at: datetime


class DatasetPage(BaseModel):
    """One page of datasets; pass ``next_page_token`` back until it is null."""

    datasets: list[DatasetPublic]
    next_page_token: str | None


def dataset_public(record: DatasetRecord) -> DatasetPublic:
    return DatasetPublic(
        id=record.id,
        name=record.name,
        project=record.project,
        format=record.format,
        sha256=record.sha256,
        size_bytes=record.size_bytes,
        rows=record.table.rows,
        columns=[
            ColumnPublic(name=c.name, kind=c.kind.value, missing=c.missing)
            for c in record.table.columns
        ],
        target=record.target,
        groups=record.groups,
        created_at=record.created_at,
    )
