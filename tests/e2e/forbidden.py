"""A python objective no test server or worker allows in tests/e2e/test_spec_policy_e2e.py:
it leaves a marker file, so a test can tell whether any worker ever ran it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def touch_marker(params: Mapping[str, Any], reporter: Any, marker: str = "") -> float:
    """Write ``marker`` (proof that this code ran) and return 0."""
    Path(marker).write_text("a worker ran a callable its operator did not allow\n")
    return 0.0
