"""``core/algorithms/kept.py``: the store algorithms keep work in between calls."""

from __future__ import annotations

from tuneforge.core.algorithms.kept import Kept


def test_the_least_recently_stored_entry_goes_first_and_take_removes() -> None:
    kept: Kept[str, int] = Kept(2)
    kept.put("a", 1)
    kept.put("b", 2)
    kept.put("a", 3)  # stored again: now the most recent
    kept.put("c", 4)  # one too many: "b" goes
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (3, None, 4)
    assert kept.take("a") == 3
    assert kept.get("a") is None and kept.take("a") is None
