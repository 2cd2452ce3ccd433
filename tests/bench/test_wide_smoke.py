"""The wider benchmark (bench/wide.py): its problems are what they claim, and a tiny run
writes every table into its own section of a report without touching the rest."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from bench import wide_synthetic as ws
from bench.wide import main, wide_problems
from bench.wide_report import BEGIN, END, keep_section


def test_the_set_has_forty_plus_problems_in_every_kind() -> None:
    problems = wide_problems()
    kinds = {p.kind for p in problems.values()}
    assert kinds == {"smooth", "multimodal", "plateau", "integer", "categorical", "sklearn-wide"}
    assert len(problems) >= 40
    assert sum(p.kind == "sklearn-wide" for p in problems.values()) >= 8
    for d in (2, 5, 10):
        assert f"ellipsoid-rot-{d}" in problems and f"step-ellipsoid-{d}" in problems


@pytest.mark.parametrize("name", [n for n, _ in [*ws.SMOOTH.items(), *ws.MULTIMODAL.items()]])
def test_bbob_functions_are_zero_at_their_optimum_and_positive_elsewhere(name: str) -> None:
    problem = wide_problems()[f"{name}-5"]
    fid = {**ws.SMOOTH, **ws.MULTIMODAL}[name][0]
    xopt = ws.Instance(fid, 5).xopt
    at = {f"x{i}": float(v) for i, v in enumerate(xopt)}
    assert problem.evaluate(at) == pytest.approx(0.0, abs=1e-9)
    off = {k: v + 0.3 for k, v in at.items()}
    assert problem.evaluate(off) > 1e-3


def test_plateau_problems_tie_on_neighbouring_points() -> None:
    problem = wide_problems()["staircase-2"]
    base = {"x0": 4.9, "x1": 4.9}
    assert problem.evaluate(base) == problem.evaluate({"x0": 4.95, "x1": 4.92})
    step = wide_problems()["step-ellipsoid-5"]
    rng = np.random.default_rng(0)
    values = [step.evaluate({f"x{i}": float(v) for i, v in enumerate(rng.uniform(-5, 5, 5))})]
    assert all(math.isfinite(v) and v >= 0 for v in values)


def test_known_optima_of_the_designed_problems_are_attained() -> None:
    problems = wide_problems()
    nk = problems["cat-nk-8"]
    assert nk.optimum is not None and 0 <= nk.optimum < 1
    layers = problems["int-layers-5"]
    best = {"w0": 96, "w1": 384, "w2": 24, "w3": 192, "depth": 5}
    assert layers.evaluate(best) == pytest.approx(0.0)


def test_quick_run_writes_its_own_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.md"
    out.write_text("# Optimizer benchmark\n\nthe main benchmark's tables\n")
    argv = [
        "--problems", "ellipsoid-rot-2", "cat-pipeline-7",
        "--seeds", "1",
        "--optimizers", "tf-random", "tf-auto", "optuna-tpe-ind",
        "--budget", "8",
        "--workers", "1",
        "--latency-levels",
        "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    text = out.read_text()
    assert text.startswith("# Optimizer benchmark\n\nthe main benchmark's tables\n")
    section = keep_section(str(out))
    assert section.startswith(BEGIN) and section.endswith(END)
    for heading in ("### Mean normalized score per kind", "### smooth", "### categorical"):
        assert heading in section
    assert "auto beats optuna-tpe-ind on >= 70% of problems" in section
    assert "- command: `python -m bench.wide --problems ellipsoid-rot-2" in section
    assert main(argv) == 0  # a second run replaces the section, not appends
    assert out.read_text().count(BEGIN) == 1
    capsys.readouterr()


@pytest.mark.skipif(importlib.util.find_spec("smac") is None, reason="the bench extra")
def test_smac_runs_through_ask_and_tell() -> None:
    from bench.peers import run_smac

    result = run_smac(wide_problems()["knn-bc"], 0, 6)
    assert len(result.values) == 6 and all(0 <= v <= 1 for v in result.values)
    again = run_smac(wide_problems()["knn-bc"], 0, 6)
    assert again.values == result.values
