"""`tuneforge run` and `tuneforge nested-cv` on the embedded default (no services)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "rf-breast-cancer.yaml"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    return subprocess.run(
        [sys.executable, "-m", "tuneforge.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def small_example(tmp_path: Path, trials: int) -> Path:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["max_trials"] = trials
    spec["parameters"][0]["high"] = 30  # few trees: a quick test
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
def test_run_a_study_file_locally(tmp_path: Path) -> None:
    result = cli("run", str(small_example(tmp_path, 6)), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "study 'rf-breast-cancer'" in result.stdout
    assert re.search(r"CV accuracy: 0\.9\d+", result.stdout)
    assert re.search(r"held-out test accuracy: 0\.9\d+ \(evaluated once\)", result.stdout)


@pytest.mark.slow
def test_nested_cv_reports_each_outer_score_and_the_mean(tmp_path: Path) -> None:
    result = cli("nested-cv", str(small_example(tmp_path, 4)), "--outer", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folds = re.findall(r"fold (\d): outer score (0\.\d+), chosen \{", result.stdout)
    assert [int(k) for k, _ in folds] == [0, 1, 2]
    mean = re.search(r"outer score: (0\.\d+) ± (0\.\d+)", result.stdout)
    assert mean is not None
    scores = [float(s) for _, s in folds]
    assert abs(float(mean.group(1)) - sum(scores) / 3) < 1e-3


def test_bad_spec_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nparameters: [{name: a, type: float, low: 2, high: 1}]\nmetrics: [{name: m}]\n"
    )
    result = cli("run", str(bad), cwd=tmp_path)
    assert result.returncode != 0
    assert "parameters[0].high" in result.stderr and "Traceback" not in result.stderr
    missing = cli("run", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert f"spec file {tmp_path / 'nope.yaml'} does not exist" in missing.stderr
