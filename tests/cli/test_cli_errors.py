"""Everyday mistakes through the real ``tuneforge`` console script: each ends as one line
on stderr (``Error: ...``) naming the file, line or field, with exit code 2 for usage
errors and 1 for failures, never a traceback; ``--debug`` / ``TUNEFORGE_DEBUG=1`` show it.

Data mistakes (a missing CSV, a wrong target column, parquet without pyarrow) are
found either when the study is created (by the server) or by the first local
trial; both paths must give the same kind of line, so these tests accept either.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

import tuneforge
from tests.conftest import free_port

SCRIPT = Path(sys.executable).parent / "tuneforge"
CLI = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tuneforge.cli"]


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env={**clean, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


def error_line(result: subprocess.CompletedProcess[str], exit_code: int = 1) -> str:
    """The single error line of a failed command, after checking that it is one."""
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # not even a blank line or a leftover bar
    assert lines[0].startswith("Error: ")
    return lines[0]


def managed_spec(name: str, dataset: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A tiny managed study: a decision tree, 2-fold CV."""
    return {
        "name": name,
        "parameters": [{"name": "max_depth", "type": "int", "low": 1, "high": 4}],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "max_trials": 2,
        "seed": 0,
        "objective": {
            "kind": "sklearn",
            "estimator": "sklearn.tree.DecisionTreeClassifier",
            "dataset": dataset,
            "cv": {"type": "kfold", "n_splits": 2, "shuffle": True, "seed": 0},
            "scoring": "accuracy",
        },
        **extra,
    }


def write(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def csv_file(tmp_path: Path) -> Path:
    rows = ["a,b,y", *(f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(40))]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "study.yaml"
    bad.write_text("name: x\nparameters: [ {name: a\nmetrics: []\n")
    line = error_line(cli("run", "study.yaml", cwd=tmp_path))
    assert line.startswith("Error: study.yaml:3:8: YAML syntax error")
    # `studies create` words the same file the same way: one error path
    assert error_line(cli("studies", "create", "study.yaml", cwd=tmp_path)) == line


def test_misspelled_top_level_key_is_named_with_the_close_match(tmp_path: Path) -> None:
    spec = managed_spec("typo", {"source": "sklearn", "name": "iris"})
    spec["paramters"] = spec.pop("parameters")
    write(tmp_path / "study.yaml", spec)
    line = error_line(cli("run", "study.yaml", cwd=tmp_path))
    assert "study.yaml" in line and "'paramters'" in line and "did you mean 'parameters'" in line


def test_missing_spec_file(tmp_path: Path) -> None:
    line = error_line(cli("run", "nope.yaml", cwd=tmp_path))
    assert line == "Error: spec file nope.yaml does not exist"


def test_missing_csv_names_the_field(tmp_path: Path) -> None:
    spec = managed_spec("no-csv", {"source": "csv", "path": "missing.csv", "target": "y"})
    write(tmp_path / "study.yaml", spec)
    line = error_line(cli("run", "study.yaml", "-w", "1", cwd=tmp_path))
    assert "objective.dataset.path" in line and "missing.csv" in line


def test_wrong_target_column_names_the_field(tmp_path: Path) -> None:
    dataset = {"source": "csv", "path": str(csv_file(tmp_path)), "target": "label"}
    write(tmp_path / "study.yaml", managed_spec("bad-target", dataset))
    line = error_line(cli("run", "study.yaml", "-w", "1", cwd=tmp_path))
    assert "objective.dataset.target" in line and "'label'" in line


def test_parquet_without_an_engine_names_the_field(tmp_path: Path) -> None:
    """As on a machine without pyarrow: packages on PYTHONPATH that fail to import hide
    the installed parquet engines from the CLI's process."""
    hidden = tmp_path / "hidden"
    for engine in ("pyarrow", "fastparquet"):
        (hidden / engine).mkdir(parents=True)
        (hidden / engine / "__init__.py").write_text(f"raise ImportError('no {engine} here')\n")
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    dataset = {"source": "parquet", "path": str(tmp_path / "data.parquet"), "target": "y"}
    write(tmp_path / "study.yaml", managed_spec("parquet", dataset))
    result = cli("run", "study.yaml", "-w", "1", cwd=tmp_path, env={"PYTHONPATH": str(hidden)})
    line = error_line(result)
    assert "objective.dataset" in line and "parquet" in line


def test_a_different_spec_under_a_taken_name_says_what_to_do(tmp_path: Path) -> None:
    first = managed_spec("taken", {"source": "sklearn", "name": "iris"})
    with tuneforge.local(tmp_path / "tuneforge.db") as client:
        client.create_study(first)
    changed = managed_spec("taken", {"source": "sklearn", "name": "wine"})
    write(tmp_path / "study.yaml", changed)
    line = error_line(cli("run", "study.yaml", cwd=tmp_path))
    assert "'taken' already exists with a different spec" in line
    assert "tuneforge run study.yaml --rename NEW" in line
    assert "tuneforge studies delete taken" in line


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    write(tmp_path / "study.yaml", managed_spec("far", {"source": "sklearn", "name": "iris"}))
    url = f"http://127.0.0.1:{free_port()}"
    line = error_line(cli("run", "study.yaml", "--server", url, cwd=tmp_path))
    assert f"cannot reach tuneforge at {url}" in line and "--server" in line


def test_usage_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    assert "Missing argument 'SPEC_FILE'" in error_line(cli("run", cwd=tmp_path), 2)
    workers = error_line(cli("run", "x.yaml", "--workers", "0", cwd=tmp_path), 2)
    assert "'--workers'" in workers and "tuneforge run --help" in workers
    assert "No such command" in error_line(cli("runn", cwd=tmp_path), 2)
    assert "No such option '--bogus'" in error_line(cli("--bogus", cwd=tmp_path), 2)
    group = cli("studies", cwd=tmp_path)  # a group alone shows its help, as click does
    assert "Commands:" in group.stdout + group.stderr and "Error" not in group.stderr


def test_other_commands_share_the_error_path(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text("name: [\n")
    nested = error_line(cli("nested-cv", "study.yaml", cwd=tmp_path))
    assert nested.startswith("Error: study.yaml:") and "YAML syntax error" in nested
    bad_db = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"
    assert bad_db in error_line(cli("db", "upgrade", "--db", bad_db, cwd=tmp_path))
    assert "cannot" in error_line(cli("serve", "--db", bad_db, cwd=tmp_path)).lower()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        line = error_line(cli("serve", "--port", port, cwd=tmp_path))
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    spec = managed_spec("typo", {"source": "sklearn", "name": "iris"})
    spec["metric"] = spec.pop("metrics")
    write(tmp_path / "study.yaml", spec)
    for result in (
        cli("run", "study.yaml", "--debug", cwd=tmp_path),
        cli("--debug", "run", "study.yaml", cwd=tmp_path),
        cli("run", "study.yaml", cwd=tmp_path, env={"TUNEFORGE_DEBUG": "1"}),
    ):
        assert result.returncode == 1
        assert "Traceback (most recent call last)" in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: study.yaml: a study spec needs 'metrics'")


def test_a_run_without_a_completed_trial_says_how_the_study_ended(tmp_path: Path) -> None:
    spec = managed_spec("never", {"source": "sklearn", "name": "iris"})
    # valid when the study is created (values the class refuses are a 422 then), but every
    # fit fails: one constraint for a table of four features
    spec["objective"]["fixed_params"] = {"monotonic_cst": [1]}
    write(tmp_path / "study.yaml", spec)
    result = cli("run", "study.yaml", "-w", "1", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    assert re.search(
        r"^no completed trial; the study ended: same_error: the first 2 trials all failed with: "
        r"ValueError: monotonic_cst has shape 1 but the input data X has 4 features\.$",
        result.stdout,
        re.MULTILINE,
    ), result.stdout
