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


def test_readme_curl_session(sqlite_url: str) -> None:
    server = LiveServer(sqlite_url).start()
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", curl_session()],
            env={"URL": server.url, "PATH": "/usr/bin:/bin:/usr/local/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    suggest, measure, complete, best = json_documents(result.stdout)
    assert suggest["trials"][0]["number"] == 0 and suggest["study_state"] == "active"
    assert measure == {"should_stop": False, "trial_state": "active", "action": None}
    assert complete["state"] == "completed" and complete["values"] == {"accuracy": 0.87}
    assert best["trials"][0]["number"] == 0


def test_readme_python_example_runs_embedded(tmp_path: Path) -> None:
    import os
    import sys

    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block, "the README lost its Python example"
    script = tmp_path / "example.py"
    script.write_text(block.group(1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    best = eval(result.stdout.strip().splitlines()[-1])  # the printed params dict
    assert abs(best["x"] - 2) < 1.5
    assert (tmp_path / "tuneforge.db").exists()
