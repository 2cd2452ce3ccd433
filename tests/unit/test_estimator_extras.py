"""xgboost and lightgbm are optional extras: their classes are on the allow-list only where
the library is installed, and naming one that is not installed is a 4xx at creation that
says which extra to install (instead of a study whose every trial fails)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_client
from tuneforge.core import estimators
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.policy import ObjectivePolicy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def without_extras(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process as if neither xgboost nor lightgbm were installed."""
    real = estimators.importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name in ("xgboost", "lightgbm") else real(name, *args)

    monkeypatch.setattr(estimators.importlib.util, "find_spec", find_spec)
    estimators.default_estimators.cache_clear()
    yield
    estimators.default_estimators.cache_clear()


def spec(estimator: str) -> dict[str, object]:
    return {
        "name": f"extra-{estimator}",
        "parameters": [{"name": "n_estimators", "type": "int", "low": 5, "high": 20}],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "objective": {
            "kind": "sklearn",
            "estimator": estimator,
            "dataset": {"source": "sklearn", "name": "iris"},
        },
    }


@pytest.mark.parametrize("path", ["xgboost.XGBClassifier", "lightgbm.LGBMRegressor"])
def test_a_library_that_is_not_installed_is_a_4xx_naming_its_extra(
    without_extras: None, sqlite_url: str, path: str
) -> None:
    module = path.split(".")[0]
    with pytest.raises(InvalidSpec) as info:
        ObjectivePolicy().check_estimator(path)
    assert info.value.field == "objective.estimator"
    assert f"tuneforge[{module}]" in info.value.message
    client: TestClient
    with make_client(sqlite_url, reconcile_interval_seconds=0) as client:
        r = client.post("/api/v1/studies", json=spec(path))
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["details"]["field"] == "objective.estimator"
        assert f"pip install 'tuneforge[{module}]'" in error["message"]
        assert client.get("/api/v1/studies").json()["studies"] == []


def test_an_installed_library_is_recognised(tmp_path: Path) -> None:
    """A stand-in ``xgboost`` package (a scikit-learn-style classifier) on the path puts
    its classes on the list, in a fresh interpreter."""
    package = tmp_path / "xgboost"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

            class XGBClassifier(DecisionTreeClassifier):
                pass

            class XGBRegressor(DecisionTreeRegressor):
                pass
            """
        )
    )
    code = textwrap.dedent(
        """
        from tuneforge.core.estimators import default_estimators, missing_extra
        from tuneforge.core.policy import ObjectivePolicy
        assert "xgboost.XGBClassifier" in default_estimators()
        assert missing_extra("xgboost.XGBClassifier") is None
        assert "max_depth" in ObjectivePolicy().check_estimator("xgboost.XGBClassifier")
        print("recognised")
        """
    )
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0 and "recognised" in out.stdout, out.stderr


def test_real_lightgbm_trains_in_the_managed_objective_when_installed() -> None:
    pytest.importorskip("lightgbm")
    from tuneforge.worker.objectives.sklearn_cv import cross_validate

    class Quiet:
        def report(self, step: int, values: object = None, /) -> bool:
            return False

    objective = {
        "kind": "sklearn",
        "estimator": "lightgbm.LGBMClassifier",
        "fixed_params": {"n_jobs": 1, "min_child_samples": 5},
        "dataset": {"source": "sklearn", "name": "breast_cancer"},
        "cv": {"type": "stratified_kfold", "n_splits": 3, "shuffle": True, "seed": 0},
        "scoring": None,
        "preprocessing": [],
        "test_size": None,
        "seed": 0,
    }
    out = cross_validate(objective, {"n_estimators": 20}, "accuracy", Quiet())
    assert len(out.fold_scores) == 3 and 0.85 < out.score <= 1.0
    assert np.isfinite(out.fold_scores).all()
