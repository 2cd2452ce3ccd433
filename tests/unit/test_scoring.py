"""Which scorer fills which metric: one name, a list, a mapping (core/scoring.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tuneforge.core.errors import InvalidSpec
from tuneforge.core.scoring import parse_scoring, scorers_for
from tuneforge.core.trials import Goal, Metric, MetricRole

METRICS = [
    Metric("auc", Goal.MAXIMIZE, MetricRole.OBJECTIVE),
    Metric("accuracy", Goal.MAXIMIZE, MetricRole.TRACKED),
    Metric("f1", Goal.MAXIMIZE, MetricRole.TRACKED),
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {"auc": None}),
        ("roc_auc", {"auc": "roc_auc"}),
        (["roc_auc", "accuracy", "f1"], {"auc": "roc_auc", "accuracy": "accuracy", "f1": "f1"}),
        ({"auc": "roc_auc", "f1": "f1_macro"}, {"auc": "roc_auc", "f1": "f1_macro"}),
    ],
)
def test_each_form_maps_metrics_to_scorers(raw: Any, expected: dict[str, Any]) -> None:
    assert parse_scoring(raw, METRICS) == raw
    assert scorers_for(raw, "auc") == expected


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ("roc_acu", "objective.scoring", "did you mean 'roc_auc'"),
        (["roc_auc", "precision"], "objective.scoring[1]", 'add {"name": "precision"'),
        (["roc_auc", "f1", "f1"], "objective.scoring[2]", "twice"),
        ({"accuracy": "accuracy"}, "objective.scoring", "objective metric(s) ['auc']"),
        ({"auc": "roc_auc", "loss": "neg_log_loss"}, "objective.scoring.loss", "not a metric"),
        (7, "objective.scoring", "scorer name"),
        ([], "objective.scoring", "1 to 32"),
    ],
)
def test_bad_scoring_names_its_field(raw: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_scoring(raw, METRICS)
    assert info.value.field == field and words in info.value.message


def test_an_objective_a_scorer_fills_must_be_maximized() -> None:
    minimized = [Metric("loss", Goal.MINIMIZE, MetricRole.OBJECTIVE)]
    with pytest.raises(InvalidSpec, match="greater-is-better"):
        parse_scoring("neg_log_loss", minimized)
