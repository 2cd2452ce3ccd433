"""bench/gp_dev.py: the in-process loop, its gp option overrides and the comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import gp_dev


def test_overrides_reach_autos_gp_and_runs_repeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jsonl = tmp_path / "dev.jsonl"
    for variant, options in (("off", "{}"), ("on", '{"trust_region": true}')):
        row = gp_dev.execute((variant, "tf-auto", "sharp-ridge-2", 100, options, ()))
        with jsonl.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert rows[0]["regret"] != rows[1]["regret"]  # the override changed auto's delegate
    again = gp_dev.execute(("on", "tf-auto", "sharp-ridge-2", 100, '{"trust_region": true}', ()))
    assert again["regret"] == rows[1]["regret"]
    from tuneforge.core.algorithms import get_algorithm

    assert "validate_options" not in get_algorithm("gp").__dict__  # restored
    gp_dev.compare(str(jsonl), "off", ["on"], [100])
    assert "sharp-ridge-2" in capsys.readouterr().out
