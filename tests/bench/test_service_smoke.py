"""Smoke test of the service load benchmark: a tiny run against a real `tuneforge serve`."""

from __future__ import annotations

from pathlib import Path

from bench.service import main


def test_quick_run_writes_both_tables(tmp_path: Path) -> None:
    out, raw = tmp_path / "service.md", tmp_path / "service.json"
    argv = [
        "--quick",
        "--clients", "2",
        "--seconds", "2",
        "--warmup", "0.5",
        "--large", "60",
        "--large-clients", "2",
        "--json", str(raw),
        "--out", str(out),
    ]  # fmt: skip
    main(argv)
    text = out.read_text()
    assert "### Closed loop" in text and "### Large studies" in text
    import json

    rows = json.loads(raw.read_text())
    assert rows["load"][0]["trials_per_s"] > 0 and rows["load"][0]["errors"] == 0
    assert rows["large"][0]["get_study_ms"] > 0
