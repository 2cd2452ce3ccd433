"""The README's curl session runs as written against a live server."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.conftest import LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"


def curl_session() -> str:
    text = README.read_text()
    match = re.search(r"<!-- readme-curl-session.*?-->\s*```bash\n(.*?)```", text, re.S)
    assert match, "the README lost its curl session block"
    return match.group(1)


def json_documents(text: str) -> list[dict[str, object]]:
    """The JSON values printed back to back (curl adds no newline between them)."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)
    return docs


def run_session(url: str) -> list[dict[str, object]]:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", curl_session()],
        env={"URL": url, "PATH": "/usr/bin:/bin:/usr/local/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json_documents(result.stdout)


def test_readme_curl_session_runs_and_runs_again(sqlite_url: str) -> None:
    server = LiveServer(sqlite_url).start()
    try:
        first = run_session(server.url)
        second = run_session(server.url)  # the same block again: same study, next trial
    finally:
        server.stop()
    for number, (suggest, measure, complete, best) in enumerate((first, second)):
        assert suggest["trials"][0]["number"] == number and suggest["study_state"] == "active"
        assert measure == {
            "should_stop": False,
            "trial_state": "active",
            "action": None,
            "next_decision_step": None,
        }
        assert complete["state"] == "completed" and complete["values"] == {"accuracy": 0.87}
        assert complete["number"] == number
        assert best["trials"][0]["values"] == {"accuracy": 0.87}


def test_readme_python_example_runs_embedded(tmp_path: Path) -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block, "the README lost its Python example"
    result = run_python(block.group(1), tmp_path)
    best = eval(result.strip().splitlines()[-1])  # the printed params dict
    assert abs(best["x"] - 2) < 1.5
    assert (tmp_path / "tuneforge.db").exists()


def test_readme_tunesearchcv_example_runs(tmp_path: Path) -> None:
    block = re.search(
        r"<!-- readme-tunesearchcv.*?-->\s*```python\n(.*?)```", README.read_text(), re.S
    )
    assert block, "the README lost its TuneSearchCV example"
    lines = run_python(block.group(1), tmp_path).strip().splitlines()
    assert lines[-2].startswith("best {'C': ") and "CV 0.9" in lines[-2]
    held_out = float(lines[-1].removeprefix("held-out accuracy "))
    assert 0.9 < held_out <= 1.0
    assert (tmp_path / "tuneforge.db").exists()


def run_python(code: str, cwd: Path) -> str:
    """Run ``code`` as a script in ``cwd`` with no TUNEFORGE_* settings; its stdout."""
    import os
    import sys

    script = cwd / "example.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
