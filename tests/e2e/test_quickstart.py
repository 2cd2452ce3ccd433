"""`tuneforge quickstart`, the README's main job, with no services: embedded SQLite, local workers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_quickstart_tunes_reports_cv_and_test_scores(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    result = subprocess.run(
        [sys.executable, "-m", "tuneforge.cli", "quickstart", "--trials", "12", "--no-progress"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(
        r"best configuration \(trial \d+\): \{'C': [\d.e+-]+, 'gamma': [\d.e+-]+\}", out
    )
    cv = float(re.search(r"CV accuracy: ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    test = float(re.search(r"held-out test accuracy: ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    assert 0.9 < cv <= 1.0 and 0.9 < test <= 1.0
    assert (tmp_path / "tuneforge.db").exists()
    assert "tuneforge serve --db sqlite:///tuneforge.db" in out
