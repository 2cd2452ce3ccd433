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
    assert rows["load"][0]["cpu_ms_per_trial"] > 0, "the servers' CPU over the window"
    assert rows["load"][0]["runq_per_cpu"] >= 0, "their threads' run-queue wait"
    assert rows["large"][0]["get_study_ms"] > 0


def test_a_postgresql_cell_reports_the_study_lock(pg_url: str, tmp_path: Path) -> None:
    """The study row lock's rate, wait and hold, read from the server's ``/metrics`` over
    the timed window (``pg_url``: PostgreSQL is up; the benchmark makes its own database)."""
    import json

    raw = tmp_path / "service.json"
    argv = [
        "--quick", "--backends", "postgresql", "--clients", "2", "--seconds", "2",
        "--warmup", "0.5", "--large", "--json", str(raw), "--out", str(tmp_path / "s.md"),
    ]  # fmt: skip
    main(argv)
    (row,) = json.loads(raw.read_text())["load"]
    assert row["backend"] == "postgresql" and row["errors"] == 0
    # two locks per trial (suggest's claim, the complete), less the window's edges
    assert row["locks_per_s"] >= row["trials_per_s"] > 0
    assert 0 < row["lock_hold_ms"] < 1000 and 0 < row["lock_busy_pct"] <= 100


def test_run_queue_wait_counts_threads_alive_in_the_window() -> None:
    """A thread alive at both marks counts its difference, one started since counts in
    full, one that ended in between counts nothing (never a negative wait)."""
    from bench.service_cpu import Usage

    start = Usage(1.0, {(1, 1): 5_000_000_000, (1, 2): 9_000_000_000})
    end = Usage(2.5, {(1, 1): 5_500_000_000, (1, 3): 250_000_000})
    assert end.waited_since(start) == 0.75
    assert end.waited_since(Usage(1.0, None)) is None, "no schedstat: not measured, not 0"


def test_a_cell_on_a_server_with_keys(pg_url: str, tmp_path: Path) -> None:
    """``--keys worker``: the studies created with an editor key, the trial calls sent with
    a worker key, every call answered (no 401), and the lock still read from /metrics."""
    import json

    raw = tmp_path / "service.json"
    argv = [
        "--quick", "--backends", "postgresql", "--clients", "2", "--seconds", "2",
        "--warmup", "0.5", "--large", "--keys", "worker",
        "--json", str(raw), "--out", str(tmp_path / "s.md"),
    ]  # fmt: skip
    main(argv)
    (row,) = json.loads(raw.read_text())["load"]
    assert row["keys"] == "worker" and row["errors"] == 0 and row["trials_per_s"] > 0
    assert row["locks_per_s"] > 0
