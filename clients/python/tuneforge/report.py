"""``tuneforge report``: one self-contained HTML file about a study.

The file holds plotly.js itself (from the installed ``plotly`` package) and every
figure's data, so it opens offline and references no remote URL. Sections: the
best configuration, cross-validation score beside the held-out test score,
parameter importance and interactions, the search history (and the Pareto front
with several objectives), the early-stopping picture and the spec.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import Conflict
from .models import ImportanceReply, StudyData, TrialData
from .report_figures import (
    Figure,
    early_stopping_figure,
    history_figure,
    importance_figure,
    interactions_figure,
    pareto_figure,
    watched_metric,
)

if TYPE_CHECKING:
    from .handles import Study

#: Trials fetched per request while the report reads the study.
PAGE_SIZE = 1000
SPEC_KEYS = (
    "name", "description", "parameters", "metrics", "algorithm", "algorithm_options",
    "early_stopping", "fidelity", "max_trials", "max_active_trials", "max_failed_trials",
    "retries", "seed", "objective", "metadata", "warm_start",
)  # fmt: skip


@dataclass
class ReportData:
    """Everything a report shows, read from the server."""

    study: StudyData
    trials: list[TrialData]
    front: list[TrialData]
    importance: ImportanceReply | None
    importance_note: str | None = None
    figures: dict[str, Figure] = field(default_factory=dict)


def collect(study: Study) -> ReportData:
    """Read the study, every trial (with measurements), the best trials and the importance."""
    study.refresh()
    trials = [t.data for t in study.trials(page_size=PAGE_SIZE)]
    front = [t.data for t in study.best_trials()]
    try:
        reply: ImportanceReply | None = study.importance()
        note = None
    except Conflict as exc:  # too few completed trials yet
        reply, note = None, exc.message
    return ReportData(study.data, trials, front, reply, note)


def write_report(study: Study, path: str | Path) -> Path:
    """Write the report of ``study`` to ``path`` (UTF-8 HTML) and return the path."""
    target = Path(path)
    target.write_text(render(collect(study)), encoding="utf-8")
    return target


def render(data: ReportData) -> str:
    """The whole HTML document."""
    s = data.study
    data.figures = _figures(data)
    body = "\n".join(
        [
            _header(s, data.trials),
            _best(s, data.front),
            _evaluation(s),
            _section("Parameter importance", _importance_part(data)),
            _section("Search history", _plots(data, "history", "pareto")),
            _section("Early stopping", _early_stopping_part(data)),
            _section("Spec", f"<pre>{_e(json.dumps(_spec(s), indent=2, default=str))}</pre>"),
        ]
    )
    return _PAGE.format(
        title=_e(f"tuneforge report: {s.name}"),
        style=_STYLE,
        plotly=_plotly_js(),
        body=body,
        figures="\n".join(_figure_json(key, fig) for key, fig in data.figures.items()),
        boot=_BOOT,
    )


def _figures(data: ReportData) -> dict[str, Figure]:
    s, trials = data.study, data.trials
    found: dict[str, Figure | None] = {
        f"history-{i}": history_figure(s, trials, m) for i, m in enumerate(s.objectives)
    }
    found["pareto"] = pareto_figure(s, trials, data.front)
    found["importance"] = importance_figure(data.importance)
    found["interactions"] = interactions_figure(data.importance)
    found["early-stopping"] = early_stopping_figure(s, trials)
    return {key: fig for key, fig in found.items() if fig is not None}


def _plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:  # pragma: no cover - plotly is a dependency of tuneforge
        raise ImportError("tuneforge report needs plotly: pip install 'plotly>=5,<7'") from None
    return get_plotlyjs()


def _figure_json(key: str, figure: Figure) -> str:
    text = json.dumps(figure, default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="figure-{_e(key)}">{text}</script>'


def _plots(data: ReportData, *prefixes: str) -> str:
    keys = [k for k in data.figures if k.startswith(prefixes)]
    if not keys:
        return "<p class='note'>No completed trial yet.</p>"
    return "".join(f'<div class="plot" data-figure="figure-{_e(k)}"></div>' for k in keys)


def _header(s: StudyData, trials: Sequence[TrialData]) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(s.trial_counts.items()) if n)
    budget = f" of {s.max_trials}" if s.max_trials else ""
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Study {s.id} in project {_e(s.project or 'default')}: <b>{_e(s.state)}</b>"
        + (f" ({_e(s.completion_reason)})" if s.completion_reason else ""),
        f"{len(trials)} trials{budget}: {_e(counts or 'none yet')}; algorithm {_e(s.algorithm)}, "
        f"early stopping {_e(str(s.early_stopping.get('rule', 'none')))}",
        f"Generated {made} by tuneforge {__version__}.",
    ]
    desc = f"<p>{_e(s.description)}</p>" if s.description else ""
    return f"<h1>{_e(s.name)}</h1>{desc}" + "".join(f"<p class='meta'>{x}</p>" for x in lines)


def _best(s: StudyData, front: Sequence[TrialData]) -> str:
    if not front:
        return _section("Best configuration", "<p class='note'>No completed trial yet.</p>")
    title = "Best configuration" if len(front) == 1 else f"Pareto front ({len(front)} trials)"
    rows = [(f"trial {t.number}", _kv(t.params), _kv(t.values or {})) for t in front]
    return _section(title, _table(("trial", "parameters", "values"), rows, cls="best"))


def _evaluation(s: StudyData) -> str:
    ev = s.evaluation
    if not ev:
        text = (
            "<p class='note'>Not evaluated on held-out data. A managed study with "
            "<code>test_size</code> gets its test score from <code>study.evaluate()</code> "
            "(<code>POST /api/v1/studies/{id}/evaluate</code>).</p>"
        )
        return _section("Cross-validation vs held-out test", text)
    if ev.get("state") == "failed":
        return _section(
            "Cross-validation vs held-out test", f"<p>Failed: {_e(str(ev.get('error')))}</p>"
        )
    rows = [
        ("cross-validation score", _num(ev.get("cv_score"))),
        ("held-out test score", _num(ev.get("test_score"))),
        ("trial", _e(str(ev.get("trial_number")))),
        ("parameters", _kv(ev.get("params") or {})),
    ]
    return _section("Cross-validation vs held-out test", _table(("", ""), rows, cls="evaluation"))


def _importance_part(data: ReportData) -> str:
    if data.importance is None:
        return f"<p class='note'>{_e(data.importance_note or 'Not available.')}</p>"
    rows = [(_e(p.name), _num(p.importance)) for p in data.importance.params]
    pairs = [
        (_e(" \u00d7 ".join(i.params)), _num(i.importance))
        for i in data.importance.interactions[:10]
    ]
    return (
        "<p class='note'>Share of the objective's variance each parameter explains alone, and "
        "pairs together beyond their main effects (functional ANOVA of a random forest).</p>"
        + _plots(data, "importance", "interactions")
        + _table(("parameter", "importance"), rows, cls="importance")
        + (_table(("pair", "interaction"), pairs, cls="interactions") if pairs else "")
    )


def _early_stopping_part(data: ReportData) -> str:
    s, trials = data.study, data.trials
    states = {state: sum(1 for t in trials if t.state == state) for state in ("pruned", "paused")}
    resumed = sum(1 for t in trials if t.resume_from_step is not None)
    text = (
        f"<p>Rule <b>{_e(str(s.early_stopping.get('rule', 'none')))}</b> on "
        f"<b>{_e(watched_metric(s))}</b>: {states['pruned']} pruned, {states['paused']} paused, "
        f"{resumed} resumed from a step.</p>"
    )
    if "early-stopping" not in data.figures:
        return text + "<p class='note'>No trial reported intermediate values.</p>"
    return text + _plots(data, "early-stopping")


def _spec(s: StudyData) -> dict[str, Any]:
    dumped = s.model_dump(mode="json")
    return {k: dumped[k] for k in SPEC_KEYS if dumped.get(k) is not None}


def _section(title: str, inner: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{inner}</section>"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _kv(values: Mapping[str, Any]) -> str:
    return "<br>".join(f"<code>{_e(str(k))}</code> = {_e(_show(v))}" for k, v in values.items())


def _num(value: Any) -> str:
    return _e(_show(value))


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
padding:0 1em;color:#222}h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:2em}p.meta{margin:.2em 0;color:#555}p.note{color:#666}table{border-collapse:collapse;
margin:1em 0}td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f5f5f5}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.85em}
.plot{width:100%;min-height:300px}
"""
_BOOT = """
document.querySelectorAll("div.plot").forEach(function (div) {
  var figure = JSON.parse(document.getElementById(div.dataset.figure).textContent);
  Plotly.newPlot(div, figure.data, figure.layout, {displaylogo: false, responsive: true});
});
"""
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
<script>{plotly}</script>
</head>
<body>
{body}
{figures}
<script>{boot}</script>
</body>
</html>
"""
