"""The figures of ``tuneforge report`` as plotly.js figure objects (plain dicts of
``data`` and ``layout``), built from the SDK's models without plotly's Python API.

Each builder returns ``None`` when there is nothing to draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .models import ImportanceReply, StudyData, TrialData

Figure = dict[str, Any]

#: Trial states and how the early-stopping picture draws them.
STATE_STYLE = {
    "completed": {"color": "#1f77b4", "symbol": "circle"},
    "pruned": {"color": "#d62728", "symbol": "x"},
    "paused": {"color": "#ff7f0e", "symbol": "diamond"},
    "active": {"color": "#2ca02c", "symbol": "triangle-right"},
    "stopping": {"color": "#2ca02c", "symbol": "triangle-right"},
}
OTHER_STYLE = {"color": "#7f7f7f", "symbol": "square"}
#: Curves drawn in the early-stopping picture at most (the latest trials).
MAX_CURVES = 2000
#: Interactions shown at most.
MAX_PAIRS = 10


def _layout(title: str, x: str, y: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": x}},
        "yaxis": {"title": {"text": y}, "automargin": True},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "height": 420,
        **extra,
    }


def history_figure(
    study: StudyData, trials: Sequence[TrialData], metric: Mapping[str, Any]
) -> Figure | None:
    """The metric of every completed trial by number, and the best-so-far line."""
    name = str(metric["name"])
    done = [t for t in trials if t.state == "completed" and t.values and name in t.values]
    if not done:
        return None
    maximize = metric.get("goal", "maximize") == "maximize"
    xs = [t.number for t in done]
    ys = [float(t.values[name]) for t in done if t.values]
    best: list[float] = []
    for y in ys:
        best.append(y if not best else (max if maximize else min)(best[-1], y))
    data = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": "trials",
            "x": xs,
            "y": ys,
            "text": [_params_text(t.params) for t in done],
            "hovertemplate": "trial %{x}: %{y}<br>%{text}<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": "best so far",
            "x": xs,
            "y": best,
            "line": {"shape": "hv"},
        },
    ]
    title = f"Search history: {name} ({'maximize' if maximize else 'minimize'})"
    return {"data": data, "layout": _layout(title, "trial number", name)}


def importance_figure(reply: ImportanceReply | None) -> Figure | None:
    """One horizontal bar per parameter, the most important on top."""
    if reply is None or not reply.params:
        return None
    params = list(reversed(reply.params))
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "name": "importance",
            "x": [p.importance for p in params],
            "y": [p.name for p in params],
        }
    ]
    title = f"Parameter importance for {reply.objective} ({reply.n_trials} trials)"
    height = max(300, 40 + 28 * len(params))
    return {"data": data, "layout": _layout(title, "share of variance", "", height=height)}


def interactions_figure(reply: ImportanceReply | None) -> Figure | None:
    """The strongest pairwise interactions as horizontal bars."""
    if reply is None or not reply.interactions:
        return None
    pairs = list(reversed(reply.interactions[:MAX_PAIRS]))
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "name": "interaction",
            "x": [i.importance for i in pairs],
            "y": [" \u00d7 ".join(i.params) for i in pairs],
        }
    ]
    height = max(300, 40 + 28 * len(pairs))
    return {
        "data": data,
        "layout": _layout("Pairwise interactions", "share of variance", "", height=height),
    }


def watched_metric(study: StudyData) -> str:
    """The metric the early-stopping rule watches (its ``metric`` option, else the first objective)."""
    chosen = study.early_stopping.get("metric")
    if isinstance(chosen, str):
        return chosen
    return str(study.objectives[0]["name"]) if study.objectives else str(study.metrics[0]["name"])


def early_stopping_figure(study: StudyData, trials: Sequence[TrialData]) -> Figure | None:
    """Intermediate values per trial, one curve each; pruned, paused and running trials in
    their own colours, with a marker on their last step."""
    name = watched_metric(study)
    curves = [t for t in trials if any(name in m.values for m in t.measurements)][-MAX_CURVES:]
    if not curves:
        return None
    data: list[dict[str, Any]] = []
    shown: set[str] = set()
    for t in curves:
        points = [(m.step, float(m.values[name])) for m in t.measurements if name in m.values]
        style = STATE_STYLE.get(t.state, OTHER_STYLE)
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": t.state,
                "legendgroup": t.state,
                "showlegend": t.state not in shown,
                "x": [p[0] for p in points],
                "y": [p[1] for p in points],
                "line": {"color": style["color"], "width": 1},
                "marker": {
                    "color": style["color"],
                    "symbol": style["symbol"],
                    "size": [0] * (len(points) - 1) + [9],
                },
                "hovertemplate": f"trial {t.number} ({t.state})<br>step %{{x}}: %{{y}}<extra></extra>",
            }
        )
        shown.add(t.state)
    rule = study.early_stopping.get("rule", "none")
    return {
        "data": data,
        "layout": _layout(f"Intermediate values of {name} (rule: {rule})", "step", name),
    }


def pareto_figure(
    study: StudyData, trials: Sequence[TrialData], front: Sequence[TrialData]
) -> Figure | None:
    """The first two objectives of every completed trial, the Pareto front highlighted."""
    if len(study.objectives) < 2:
        return None
    a, b = (str(m["name"]) for m in study.objectives[:2])
    done = [
        t for t in trials if t.state == "completed" and t.values and a in t.values and b in t.values
    ]
    if not done:
        return None
    on_front = {t.number for t in front}
    data = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": "trials",
            "x": [t.values[a] for t in done if t.values and t.number not in on_front],
            "y": [t.values[b] for t in done if t.values and t.number not in on_front],
        },
        {
            "type": "scatter",
            "mode": "markers",
            "name": "Pareto front",
            "x": [t.values[a] for t in front if t.values],
            "y": [t.values[b] for t in front if t.values],
            "marker": {"size": 10, "color": "#d62728"},
        },
    ]
    return {"data": data, "layout": _layout("Pareto front", a, b)}


def _params_text(params: Mapping[str, Any]) -> str:
    return "<br>".join(f"{k} = {v}" for k, v in params.items())
