"""The reproducibility record a managed trial carries in its metadata.

``metadata.reproducibility`` says how the trial ran, so it can be run again and
compared: the seeds, the versions of the packages that trained it, the worker's
host and Python, the code version when the operator sets one
(``TUNEFORGE_CODE_VERSION``) or the worker runs from a git checkout, the
dataset's fingerprint, and the per-fold scores of every metric.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from collections.abc import Mapping
from functools import lru_cache
from importlib import metadata
from typing import Any

#: Distributions whose versions every record lists (optional ones only when installed).
PACKAGES = ("tuneforge", "scikit-learn", "numpy", "scipy", "pandas", "pyarrow")
OPTIONAL = ("xgboost", "lightgbm")
KEY = "reproducibility"


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Installed versions of the training stack (read once per process)."""
    versions = {}
    for name in (*PACKAGES, *OPTIONAL):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@lru_cache(maxsize=1)
def code_version() -> str | None:
    """``TUNEFORGE_CODE_VERSION``, else the commit of the git checkout the worker runs in."""
    configured = os.environ.get("TUNEFORGE_CODE_VERSION")
    if configured:
        return configured
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def dataset_fingerprint(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies the data: an upload's id, name and SHA-256; a file's path; a
    bundled dataset's name."""
    keep = ("source", "id", "name", "sha256", "format", "path", "target")
    return {k: dataset[k] for k in keep if dataset.get(k) is not None}


def reproducibility(
    objective: Mapping[str, Any],
    params: Mapping[str, Any],
    metric_folds: Mapping[str, tuple[float, ...]],
    train_seconds: float,
) -> dict[str, Any]:
    """``{"reproducibility": {...}}`` for one managed sklearn trial."""
    cv = objective.get("cv", {})
    seeds = {"objective": objective.get("seed", 0), "cv": cv.get("seed")}
    if "random_state" in params:
        seeds["random_state"] = params["random_state"]
    record = {
        "seeds": {k: v for k, v in seeds.items() if v is not None},
        "packages": package_versions(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "code_version": code_version(),
        "dataset": dataset_fingerprint(objective["dataset"]),
        "fold_scores": {name: list(values) for name, values in metric_folds.items()},
        "train_seconds": round(train_seconds, 6),
    }
    return {KEY: record}
