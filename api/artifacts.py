"""The artifact store: large opaque files (trial checkpoints, uploaded datasets) kept
outside the database, in a directory or any fsspec URL.

Keys are ``/``-separated paths under the store's root, built only by the server
(``studies/<id>/trials/<number>/checkpoint``), never taken from a client. A
write streams into a temporary file beside its key and renames it into place
once complete, so a reader sees the old file or the new one, never half of one,
and an upload cut off mid-way (a 413, a dropped connection) leaves nothing
behind. Each artifact has a small JSON sidecar (``<key>.json``) with its size,
SHA-256 and whatever the caller records (a checkpoint's step), renamed into place
the same way after the bytes. A reader of a key that is being saved again
(:meth:`ArtifactStore.open_current`) gets one whole version of the bytes; before
the sidecar was renamed too, such a reader could find it half written
(``tests/unit/test_artifact_store.py``).

The default root is a directory beside the SQLite file in embedded mode
(``./tuneforge.db`` keeps its artifacts in ``./tuneforge-artifacts``) and
``./tuneforge-artifacts`` otherwise; a team server with several replicas
sets ``TUNEFORGE_ARTIFACT_URL`` to a location every replica reaches (a shared
directory, ``s3://bucket/prefix`` with s3fs installed, ...).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
from sqlalchemy.engine import make_url
from starlette.concurrency import run_in_threadpool

#: A study as the store names it: its id and its creation time.
StudyIdentity = tuple[int, datetime]
#: Bytes read from the store per chunk of a download.
CHUNK = 1024 * 1024


class ArtifactTooLarge(Exception):
    """The upload grew past its limit; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"artifact exceeds {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredArtifact:
    """What the store knows about one artifact."""

    key: str
    size_bytes: int
    sha256: str
    saved_at: str
    info: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The artifact as a JSON object (also its sidecar's content)."""
        return {
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "saved_at": self.saved_at,
            **dict(self.info),
        }


def default_artifact_url(db_url: str) -> str:
    """A directory beside the SQLite file, or ``./tuneforge-artifacts``."""
    try:
        url = make_url(db_url)
    except Exception:  # an unparsable URL fails elsewhere, with a better message
        return os.path.abspath("tuneforge-artifacts")
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        folder = os.path.dirname(os.path.abspath(database))
        return os.path.join(folder, "tuneforge-artifacts")
    return os.path.abspath("tuneforge-artifacts")


class ArtifactStore:
    """Streams artifacts into and out of one fsspec location."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, key: str) -> str:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"bad artifact key {key!r}")
        return f"{self.root.rstrip('/')}/{key}"

    async def save(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        limit: int,
        info: Mapping[str, Any] | None = None,
    ) -> StoredArtifact:
        """Stream ``chunks`` into ``key`` (replacing it); :class:`ArtifactTooLarge` past
        ``limit`` bytes, leaving the previous artifact, if any, untouched."""
        path = self._path(key)
        await run_in_threadpool(self.fs.makedirs, path.rsplit("/", 1)[0], True)
        temporary = f"{path}.part-{uuid.uuid4().hex}"
        digest, size = hashlib.sha256(), 0
        handle = await run_in_threadpool(self.fs.open, temporary, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise ArtifactTooLarge(limit)
                digest.update(chunk)
                await run_in_threadpool(handle.write, chunk)
            await run_in_threadpool(handle.close)
            stored = StoredArtifact(
                key, size, digest.hexdigest(), datetime.now(UTC).isoformat(), dict(info or {})
            )
            await run_in_threadpool(self._commit, temporary, path, stored)
        except BaseException:
            await run_in_threadpool(self._discard, handle, temporary)
            raise
        return stored

    def _commit(self, temporary: str, path: str, stored: StoredArtifact) -> None:
        """Rename the bytes into place, then the sidecar (written beside it first): a reader
        never sees a sidecar half written."""
        self.fs.mv(temporary, path)
        record = f"{path}.json.part-{uuid.uuid4().hex}"
        with self.fs.open(record, "w") as sidecar:
            sidecar.write(json.dumps(stored.to_dict()))
        self.fs.mv(record, f"{path}.json")

    def _discard(self, handle: Any, temporary: str) -> None:
        try:
            handle.close()
        finally:
            if self.fs.exists(temporary):
                self.fs.rm(temporary)

    def describe(self, key: str) -> StoredArtifact | None:
        """The artifact's record, or ``None`` when there is none."""
        path = self._path(key)
        if not self.fs.exists(path) or not self.fs.exists(f"{path}.json"):
            return None
        with self.fs.open(f"{path}.json", "r") as sidecar:
            data = json.loads(sidecar.read())
        size, sha, saved = data.pop("size_bytes"), data.pop("sha256"), data.pop("saved_at")
        return StoredArtifact(key, int(size), str(sha), str(saved), data)

    def read_chunks(self, key: str) -> Iterator[bytes]:
        """The artifact's bytes, a chunk at a time (for a streamed reply)."""
        with self.fs.open(self._path(key), "rb") as handle:
            yield from chunks_of(handle)

    def open_current(self, key: str) -> tuple[StoredArtifact, Any] | None:
        """The artifact's record and an open file of its bytes (close it), or ``None``.

        For an artifact that is replaced while it is read (a checkpoint saved again): the
        open file holds one whole version whatever is renamed over it later, and the
        record's ``size_bytes`` is that file's size. The other fields come from the
        sidecar read just before; in the instant between a save's two renames they may
        still describe the version before."""
        stored = self.describe(key)
        if stored is None:
            return None
        try:
            handle = self.fs.open(self._path(key), "rb")
        except FileNotFoundError:  # deleted meanwhile (its study was)
            return None
        size = handle.seek(0, os.SEEK_END)
        handle.seek(0)
        if size != stored.size_bytes:
            stored = dataclasses.replace(stored, size_bytes=size)
        return stored, handle

    def read_bytes(self, key: str) -> bytes:
        """The whole artifact (small ones only)."""
        with self.fs.open(self._path(key), "rb") as handle:
            data: bytes = handle.read()
            return data

    def move(self, key: str, new_key: str) -> None:
        """Rename an artifact (and its record), replacing whatever ``new_key`` held."""
        source, target = self._path(key), self._path(new_key)
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(f"{source}.json", f"{target}.json")
        self.fs.mv(source, target)

    def open(self, key: str) -> Any:
        """A binary file object reading the artifact (close it, or use ``with``)."""
        return self.fs.open(self._path(key), "rb")

    def delete_tree(self, prefix: str) -> None:
        """Remove every artifact under ``prefix`` (nothing when there is none)."""
        path = self._path(prefix)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)


def chunks_of(handle: Any) -> Iterator[bytes]:
    """An open file's bytes, a chunk at a time; closes it at the end."""
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def checkpoint_key(study: StudyIdentity, number: int) -> str:
    """Where trial ``number`` of ``study`` keeps its checkpoint."""
    return f"{study_prefix(study)}/trials/{number}/checkpoint"


def dataset_key(sha256: str) -> str:
    """Where an uploaded dataset's bytes live (datasets with the same content share them)."""
    return f"datasets/{sha256}"


def study_prefix(study: StudyIdentity) -> str:
    """The folder of everything a study stores (removed with the study).

    Named by the study's id *and* creation time: two databases beside each other
    (or a database file deleted and made anew) hand out the same ids, and must
    never see each other's checkpoints in a shared store.
    """
    study_id, created_at = study
    return f"studies/{study_id}-{int(created_at.timestamp() * 1_000_000)}"
