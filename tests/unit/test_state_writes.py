"""Structural check: only the lifecycle module writes trial and study states.

Every Python module of the server, the workers and the SDK is parsed with
``ast``; a state write is an assignment to an attribute named ``state``,
``setattr(x, "state", ...)``, a ``...Row(state=...)`` constructor or an SQL
``.values(state=...)``. Outside ``api/services/lifecycle.py`` there must be
none; inside it they live only in the two writers that check the transition
tables and the two constructors of new rows.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("api", "worker", "clients/python/tuneforge")
LIFECYCLE = "api/services/lifecycle.py"
#: Functions of the lifecycle module allowed to write a state, and what each must call.
WRITERS = {
    "_write_trial_state": "check_transition",
    "_write_study_state": "check_study_transition",
}
CONSTRUCTORS = {"new_trial", "new_study"}


@dataclass(frozen=True)
class Write:
    line: int
    function: str | None
    kind: str


class _Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.writes: list[Write] = []
        self._functions: list[str] = []

    def _add(self, node: ast.AST, kind: str) -> None:
        where = self._functions[-1] if self._functions else None
        self.writes.append(Write(getattr(node, "lineno", 0), where, kind))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._functions.append(node.name)
        self.generic_visit(node)
        self._functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def _check_target(self, target: ast.AST) -> None:
        if isinstance(target, ast.Attribute) and target.attr == "state":
            self._add(target, "assignment")
        elif isinstance(target, ast.Tuple | ast.List):
            for item in target.elts:
                self._check_target(item)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_target(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._check_target(node.target)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _callee(node.func)
        if name == "setattr" and len(node.args) >= 2 and _is_state(node.args[1]):
            self._add(node, "setattr")
        has_state = any(k.arg == "state" for k in node.keywords)
        if name is not None and name.endswith("Row") and has_state:
            self._add(node, "row constructor")
        if name == "values" and isinstance(node.func, ast.Attribute):
            in_dict = any(
                isinstance(a, ast.Dict) and any(k is not None and _is_state(k) for k in a.keys)
                for a in node.args
            )
            if has_state or in_dict:
                self._add(node, "sql values")
        self.generic_visit(node)


def _callee(func: ast.AST) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _is_state(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == "state"


def state_writes(source: str) -> list[Write]:
    """Every state write in ``source``, with the function it sits in."""
    finder = _Finder()
    finder.visit(ast.parse(source))
    return finder.writes


def modules() -> list[Path]:
    out = [p for root in SCANNED for p in sorted((REPO / root).rglob("*.py"))]
    return [p for p in out if "__pycache__" not in p.parts]


def test_the_scan_covers_the_service_and_workers() -> None:
    names = {p.relative_to(REPO).as_posix() for p in modules()}
    for expected in (
        LIFECYCLE,
        "api/services/trials.py",
        "api/services/studies.py",
        "api/services/suggest.py",
        "api/services/managed.py",
        "api/scheduler.py",
        "worker/tasks.py",
        "clients/python/tuneforge/handles.py",
    ):
        assert expected in names


def test_no_module_but_lifecycle_writes_a_state() -> None:
    offenders = []
    for path in modules():
        rel = path.relative_to(REPO).as_posix()
        if rel == LIFECYCLE:
            continue
        offenders += [f"{rel}:{w.line} ({w.kind})" for w in state_writes(path.read_text())]
    assert offenders == []


def test_lifecycle_writes_states_only_through_the_tables() -> None:
    source = (REPO / LIFECYCLE).read_text()
    writes = state_writes(source)
    assignments = {w.function for w in writes if w.kind == "assignment"}
    constructors = {w.function for w in writes if w.kind == "row constructor"}
    assert assignments == set(WRITERS)
    assert constructors == CONSTRUCTORS
    assert {w.kind for w in writes} == {"assignment", "row constructor"}
    functions = {
        node.name: node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef)
    }
    for writer, check in WRITERS.items():
        calls = {_callee(n.func) for n in ast.walk(functions[writer]) if isinstance(n, ast.Call)}
        assert check in calls, f"{writer} must call {check} before it writes"


@pytest.mark.parametrize(
    ("snippet", "kind"),
    [
        ("def f(row):\n    row.state = 'active'\n", "assignment"),
        ("def f(row, t):\n    row.state: str = t.value\n", "assignment"),
        ("def f(a, b):\n    a.x, b.state = 1, 2\n", "assignment"),
        ("def f(row):\n    row.state += 'x'\n", "assignment"),
        ("def f(row):\n    setattr(row, 'state', 'pruned')\n", "setattr"),
        ("def f(s):\n    s.add(TrialRow(number=1, state='active'))\n", "row constructor"),
        ("def f(s):\n    s.add(models.StudyRow(state='paused'))\n", "row constructor"),
        ("def f(s):\n    s.execute(update(TrialRow).values(state='failed'))\n", "sql values"),
        ("def f(s):\n    s.execute(update(TrialRow).values({'state': 'x'}))\n", "sql values"),
    ],
)
def test_the_check_catches_a_write(snippet: str, kind: str) -> None:
    assert [w.kind for w in state_writes(snippet)] == [kind]
    assert state_writes(snippet)[0].function == "f"


@pytest.mark.parametrize(
    "snippet",
    [
        "x = row.state\n",
        "trial = Trial(number=1, state=TrialState.ACTIVE, params={})\n",
        "row.state_counts = {}\n",
        "q = select(TrialRow).where(TrialRow.state == 'active')\n",
        "q = update(DispatchRow).values(claimed_at=now)\n",
        "study.algorithm_state = {}\n",
    ],
)
def test_the_check_lets_reads_and_value_objects_pass(snippet: str) -> None:
    assert state_writes(snippet) == []
