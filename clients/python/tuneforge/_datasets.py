"""Turning what a user hands ``upload_dataset`` into bytes and query fields (no network).

A path is sent as it is (CSV, or Parquet recognised by its ``.parquet`` / ``.pq``
suffix or its bytes); a pandas DataFrame is written as Parquet, which keeps its
column types. The sync and async clients send the resulting :class:`Upload` alike.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Upload:
    """The body and query fields of one ``POST /datasets``."""

    content: bytes
    params: dict[str, str]


def prepare_upload(
    data: Any,
    *,
    name: str | None,
    target: str | None,
    groups: str | None,
    format: str | None,
) -> Upload:
    """The upload of ``data`` (a path or a pandas DataFrame); ``name`` defaults to the
    file's name without its suffix (a DataFrame needs one)."""
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        content = path.read_bytes()
        fmt = format or ("parquet" if path.suffix.lower() in PARQUET_SUFFIXES else None)
        name = name or path.stem
    elif hasattr(data, "to_parquet"):
        if not name:
            raise ValueError("name a DataFrame's dataset: upload_dataset(frame, name='churn')")
        buffer = io.BytesIO()
        data.to_parquet(buffer, index=False)
        content, fmt = buffer.getvalue(), "parquet"
    else:
        raise TypeError(
            f"upload_dataset takes a file path or a pandas DataFrame, not {type(data).__name__}"
        )
    params = {"name": name, "format": fmt, "target": target, "groups": groups}
    return Upload(content, {k: v for k, v in params.items() if v is not None})
