"""The artifact store read while the same key is saved again (a checkpoint that a donor
keeps saving while a PBT member loads it): every read gets one whole version and a
record that parses, never a half-written sidecar."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from tuneforge.api.artifacts import ArtifactStore, chunks_of

KEY = "studies/1-0/trials/0/checkpoint"
VERSIONS = 300


def version(i: int) -> bytes:
    """Version ``i``: ``1000 + i`` bytes, every one of them ``i % 256``."""
    return bytes([i % 256]) * (1000 + i)


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_a_key_read_while_it_is_saved_again_gives_whole_versions(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    asyncio.run(store.save(KEY, one_chunk(version(0)), 10**6, {"step": 0}))
    done = threading.Event()
    errors: list[BaseException] = []

    def save_again() -> None:
        try:
            for i in range(1, VERSIONS):
                asyncio.run(store.save(KEY, one_chunk(version(i)), 10**6, {"step": i}))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=save_again)
    writer.start()
    reads = 0
    while not done.is_set() or reads == 0:
        found = store.open_current(KEY)
        assert found is not None
        stored, handle = found
        data = b"".join(chunks_of(handle))
        assert len(data) == stored.size_bytes  # what the reply's Content-Length says
        i = len(data) - 1000
        assert data == version(i), "bytes of two versions mixed"
        reads += 1
    writer.join()
    assert not errors, errors
    assert reads > 10
    stored, handle = store.open_current(KEY) or (None, None)
    assert stored is not None and stored.info["step"] == VERSIONS - 1
    handle.close()
    left = sorted(p.name for p in (tmp_path / "studies/1-0/trials/0").iterdir())
    assert left == ["checkpoint", "checkpoint.json"]  # no temporary file left behind
