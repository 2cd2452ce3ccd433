"""How pytest-xdist (``-n``, set in pyproject's ``addopts``) hands the suite to its workers.

With ``--dist loadscope`` a worker gets a whole test module at a time, so the module- and
package-scoped fixtures (a live server, a seeded study) are set up once. Two changes:

- ``tests/dashboard`` is one unit: its session server and package browser start once;
- the modules listed in ``PER_TEST`` have function-scoped fixtures only and a few slow tests
  each (servers, Celery workers, subprocesses): each test is a unit of its own, so the two
  workers share them instead of one worker running a whole slow module.
"""

from __future__ import annotations

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

#: Paths (a folder ending in ``/`` or a module) whose tests are scheduled one by one.
#: Only modules without module-, class- or package-scoped fixtures belong here.
PER_TEST = (
    "tests/e2e/",
    "tests/clients/",
    "tests/cli/test_cli_admin.py",
    "tests/cli/test_cli_errors.py",
    "tests/cli/test_cli_resume.py",
)

#: Paths whose tests are one unit together (they share package- or session-scoped fixtures).
TOGETHER = ("tests/dashboard/",)


class SuiteScheduling(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        for folder in TOGETHER:
            if path.startswith(folder):
                return folder
        if path.startswith(PER_TEST):
            return nodeid
        return super()._split_scope(nodeid)


def make_scheduler(config: pytest.Config, log: Producer) -> LoadScopeScheduling | None:
    """``pytest_xdist_make_scheduler``: ours for ``--dist loadscope``, xdist's otherwise."""
    if config.getvalue("dist") != "loadscope":
        return None
    return SuiteScheduling(config, log)
