"""The user docs name only settings and files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tuneforge.api.settings import Settings
from tuneforge.worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = {".git", "build", "dist", "node_modules", ".venv"}  # not the project's own files
SOURCES = [
    p
    for ext in ("py", "mjs", "sh")
    for p in ROOT.glob(f"**/*.{ext}")
    if not SKIP & set(p.relative_to(ROOT).parts)
]


def settings_variables() -> set[str]:
    fields = [*Settings.model_fields, *WorkerSettings.model_fields]
    return {f"TUNEFORGE_{name.upper()}" for name in fields}


def source_text() -> str:
    return "\n".join(p.read_text(errors="replace") for p in SOURCES)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_environment_variable_a_doc_names_is_read_somewhere(doc: Path) -> None:
    named = set(re.findall(r"\bTUNEFORGE_[A-Z][A-Z0-9_]*\b", doc.read_text()))
    code = source_text()
    unknown = sorted(v for v in named if v not in settings_variables() and v not in code)
    assert not unknown, f"{doc.name} names variables no code reads: {unknown}"


def test_source_cites_the_docs_not_design_notes_outside_the_repository() -> None:
    pattern = re.compile(r"\b(API|ARCHITECTURE|STYLE)\.md\b")
    cited = [
        str(p.relative_to(ROOT))
        for p in [*SOURCES, *DOCS]
        if p.name != Path(__file__).name and pattern.search(p.read_text())
    ]
    assert not cited, f"these files cite notes that are not in the repository: {cited}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_in_docs_point_at_files(doc: Path) -> None:
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text())
    missing = [link for link in links if not (doc.parent / link).exists()]
    assert not missing, f"{doc.name} links to missing files: {missing}"
