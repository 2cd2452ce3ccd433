"""Uploaded datasets on the workers: downloaded once, kept on disk by fingerprint.

A study that trains on an uploaded dataset names its fingerprint (SHA-256 of the
bytes); a worker looks for ``<cache>/<sha256>.<format>`` and downloads the bytes
from the server (``GET /datasets/{id}/content``) only when it is missing, checks
them against the fingerprint and renames them into place, so concurrent workers
on one machine never read half a file. The table is then loaded and split once
per worker process (see :func:`tuneforge.worker.objective.problem_for`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...core.errors import InvalidSpec

#: Where downloaded datasets are kept when the worker's settings name no folder.
DEFAULT_DIRECTORY = os.path.join(tempfile.gettempdir(), "tuneforge-datasets")
FIELD = "objective.dataset"


class DatasetCache:
    """Local copies of uploaded datasets; ``download(id)`` fetches a dataset's bytes."""

    def __init__(self, directory: str | None, download: Callable[[int], bytes]) -> None:
        self.directory = Path(directory or DEFAULT_DIRECTORY)
        self.download = download
        #: Downloads this cache made (tests and the benchmark read it).
        self.downloads = 0

    def path(self, dataset: Mapping[str, Any]) -> str:
        """The local file of a resolved uploaded dataset, downloading it if needed."""
        sha, fmt = str(dataset["sha256"]), str(dataset.get("format", "csv"))
        if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
            raise InvalidSpec("must be a SHA-256 in hex", field=f"{FIELD}.sha256")
        if fmt not in ("csv", "parquet"):
            raise InvalidSpec("must be csv or parquet", field=f"{FIELD}.format")
        target = self.directory / f"{sha}.{fmt}"
        if target.exists():
            return str(target)
        data = self.download(int(dataset["id"]))
        self.downloads += 1
        if hashlib.sha256(data).hexdigest() != sha:
            raise InvalidSpec(
                "the server's bytes do not match the study's fingerprint (the dataset was "
                "replaced?)",
                field=f"{FIELD}.sha256",
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.part")
        partial.write_bytes(data)
        os.replace(partial, target)
        return str(target)


def localized(objective: Mapping[str, Any], cache: DatasetCache | None) -> dict[str, Any]:
    """``objective`` with an uploaded dataset's local file as ``dataset.cached_path``
    (other objectives as they are)."""
    dataset = objective.get("dataset") if objective.get("kind") == "sklearn" else None
    if not dataset or dataset.get("source") != "uploaded":
        return dict(objective)
    if cache is None:
        raise InvalidSpec(
            "this runner cannot download uploaded datasets (it has no server connection)",
            field=f"{FIELD}.source",
        )
    return {**objective, "dataset": {**dataset, "cached_path": cache.path(dataset)}}
