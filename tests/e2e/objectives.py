"""Python objectives the e2e workers import (``kind: python``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


def slow_quadratic(
    params: Mapping[str, Any], reporter: Any, steps: int = 4, pause: float = 0.4
) -> float:
    """A few reported steps with a pause each, so a test can kill a worker mid-trial."""
    value = (params["x"] - 0.3) ** 2
    for step in range(1, steps + 1):
        time.sleep(pause)
        if reporter.report(step, {"loss": value * (1 + 1 / step)}):
            break
    return value
