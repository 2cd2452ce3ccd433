"""Uploaded data on the workers: a CSV and a Parquet copy of the same table train
identically (same splits, same scores for the same params and seed), the bytes are
downloaded once and kept by fingerprint, and each trial records how it ran."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tuneforge
from tests.conftest import make_client
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.policy import ObjectivePolicy
from tuneforge.worker.objective import evaluate, problem_for
from tuneforge.worker.objectives.fetch import DatasetCache, localized
from tuneforge.worker.objectives.sklearn_cv import holdout_score
from tuneforge.worker.tasks import run_one_trial

POLICY = ObjectivePolicy()


def churn(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    plan = rng.choice(["basic", "pro", "team"], size=n)
    spend = rng.gamma(2.0, 30.0, size=n)
    age = rng.integers(18, 80, size=n).astype(float)
    logit = 0.03 * (spend - 60) + np.where(plan == "basic", 1.0, -0.5) - 0.01 * (age - 45)
    churned = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    age[rng.random(n) < 0.1] = np.nan
    plan = pd.Series(plan, dtype=object).where(rng.random(n) > 0.08, None)
    signup = pd.date_range("2021-01-01", periods=n, freq="D")
    return pd.DataFrame(
        {"age": age, "plan": plan, "signup": signup, "spend": spend.round(2), "churned": churned}
    )


def spec(name: str, dataset: str) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": [
            {"name": "model__C", "type": "float", "low": 0.01, "high": 10, "scale": "log"}
        ],
        "metrics": [
            {"name": "auc", "goal": "maximize"},
            {"name": "accuracy", "role": "tracked"},
        ],
        "max_trials": 3,
        "objective": {
            "kind": "sklearn",
            "dataset": {"source": "uploaded", "name": dataset, "target": "churned"},
            "pipeline": {
                "columns": {
                    "numeric": {"impute": "median", "scale": "standard"},
                    "categorical": {"impute": "most_frequent", "encode": "onehot"},
                },
                "steps": [
                    {"name": "model", "estimator": "sklearn.linear_model.LogisticRegression"}
                ],
            },
            "scoring": {"auc": "roc_auc", "accuracy": "accuracy"},
            "cv": {"type": "stratified_kfold", "n_splits": 4, "seed": 5},
            "test_size": 0.25,
            "seed": 9,
        },
    }


class FakeTrial:
    """What the runner needs of a trial: its params and a report method."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)
        self.reports: list[tuple[int, dict[str, float]]] = []

    def report(self, step: int, values: Mapping[str, float] | None = None, /) -> bool:
        self.reports.append((step, dict(values or {})))
        return False


@pytest.fixture
def client(sqlite_url: str) -> Iterator[tuneforge.Client]:
    with (
        make_client(sqlite_url, reconcile_interval_seconds=0) as app,
        tuneforge.Client("http://worker.test", transport=app._transport) as sdk,
    ):
        yield sdk


def test_csv_and_parquet_uploads_give_the_same_splits_and_scores(
    client: tuneforge.Client, tmp_path: Path
) -> None:
    frame = churn()
    csv = tmp_path / "churn.csv"
    frame.to_csv(csv, index=False)
    client.upload_dataset(csv, name="churn-csv")
    parquet = client.upload_dataset(frame, name="churn-parquet")  # a DataFrame goes as Parquet
    assert parquet.format == "parquet"
    studies = [client.create_study(spec(f"s-{d}", d)) for d in ("churn-csv", "churn-parquet")]
    objectives = [s.data.objective for s in studies]
    assert objectives[0]["dataset"]["sha256"] != objectives[1]["dataset"]["sha256"]
    cache = DatasetCache(str(tmp_path / "cache"), client.download_dataset)
    problems = [problem_for(localized(o, cache), POLICY) for o in objectives]
    np.testing.assert_array_equal(problems[0].tune_rows, problems[1].tune_rows)
    np.testing.assert_array_equal(problems[0].test_rows, problems[1].test_rows)
    for (train_a, test_a), (train_b, test_b) in zip(*(p.folds for p in problems), strict=True):
        np.testing.assert_array_equal(train_a, train_b)
        np.testing.assert_array_equal(test_a, test_b)
    pd.testing.assert_frame_equal(problems[0].data.X, problems[1].data.X)
    for c in (0.05, 1.0, 7.0):
        outs = [
            evaluate(FakeTrial({"model__C": c}), o, "auc", POLICY, datasets=cache)
            for o in objectives
        ]
        assert outs[0].values == outs[1].values
        folds = [o.metadata["reproducibility"]["fold_scores"] for o in outs]
        assert folds[0] == folds[1] and len(folds[0]["auc"]) == 4
        assert set(outs[0].values) == {"auc", "accuracy"} and 0.5 < outs[0].values["auc"] <= 1
    tests = [
        holdout_score(localized(o, cache), {"model__C": 1.0}, p, POLICY, "auc")
        for o, p in zip(objectives, problems, strict=True)
    ]
    assert tests[0] == tests[1]
    assert cache.downloads == 2  # one per dataset, however many trials


def test_the_bytes_are_downloaded_once_and_checked_against_the_fingerprint(
    client: tuneforge.Client, tmp_path: Path
) -> None:
    data = client.upload_dataset(churn(), name="once")
    reference = {**data.reference(), "sha256": data.sha256, "format": data.format}
    calls: list[int] = []

    def download(ident: int) -> bytes:
        calls.append(ident)
        return client.download_dataset(ident)

    first = DatasetCache(str(tmp_path), download)
    path = first.path(reference)
    assert first.path(reference) == path and calls == [data.id]
    second = DatasetCache(str(tmp_path), download)  # another worker process, same machine
    assert second.path(reference) == path and calls == [data.id]
    assert pd.read_parquet(path).shape == churn().shape
    forged = DatasetCache(str(tmp_path / "other"), lambda _: b"not the uploaded bytes")
    with pytest.raises(InvalidSpec) as info:
        forged.path(reference)
    assert info.value.field == "objective.dataset.sha256"
    assert list((tmp_path / "other").glob("*")) == []


def test_a_managed_trial_records_how_it_ran(client: tuneforge.Client, tmp_path: Path) -> None:
    data = client.upload_dataset(churn(), name="recorded")
    study = client.create_study(spec("recorded-study", "recorded"))
    cache = DatasetCache(str(tmp_path), client.download_dataset)
    assert run_one_trial(study, 1, POLICY, datasets=cache) == "completed"
    (trial,) = list(study.trials())
    record = trial.data.metadata["reproducibility"]
    assert record["dataset"] == {
        "source": "uploaded",
        "id": data.id,
        "name": "recorded",
        "sha256": data.sha256,
        "format": "parquet",
        "target": "churned",
    }
    assert record["seeds"] == {"objective": 9, "cv": 5}
    assert record["packages"]["scikit-learn"] and record["packages"]["tuneforge"]
    assert record["host"] and record["python"].startswith("3.")
    assert len(record["fold_scores"]["auc"]) == 4
    assert np.mean(record["fold_scores"]["auc"]) == pytest.approx(trial.values["auc"])
    assert np.mean(record["fold_scores"]["accuracy"]) == pytest.approx(trial.values["accuracy"])
    assert record["train_seconds"] > 0
    steps = [m.step for m in trial.data.measurements]
    assert steps == [1, 2, 3, 4]
    assert set(trial.data.measurements[-1].values) == {"auc", "accuracy"}


def test_an_objective_without_a_connection_cannot_fetch_uploaded_data() -> None:
    objective = spec("x", "d")["objective"]
    with pytest.raises(InvalidSpec, match="cannot download"):
        localized({**objective, "dataset": {"source": "uploaded", "id": 1}}, None)
