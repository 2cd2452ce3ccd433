// Figures over time: intermediate values per trial (with stopped, paused and resumed
// trials marked), the timeline of trials per worker, and the hypervolume's history. One WebGL trace per group of
// trials, lines separated by gaps, so 10,000 trials are a handful of traces (WebGL ones
// when there are many points).

import { endOf } from "./dom.js";
import { BASE_LAYOUT, scatterType } from "./plots.js";

/** How trials are grouped in both figures, and their colours. */
export const GROUPS = [
  { name: "completed", states: ["completed"], color: "#4c78a8" },
  { name: "stopped (pruned)", states: ["pruned"], color: "#e45756" },
  { name: "paused", states: ["paused"], color: "#f58518" },
  { name: "running", states: ["active", "stopping", "requested"], color: "#54a24b" },
  { name: "failed / infeasible", states: ["failed", "infeasible"], color: "#9d755d" },
];

function groupOf(state) {
  return GROUPS.find((g) => g.states.includes(state)) || GROUPS[GROUPS.length - 1];
}

/** The value a measurement reports for ``metric`` (or its only value). */
export function measured(m, metric) {
  if (Number.isFinite(m.values[metric.name])) return m.values[metric.name];
  const keys = Object.keys(m.values);
  return keys.length === 1 && Number.isFinite(m.values[keys[0]]) ? m.values[keys[0]] : null;
}

/** Learning curves: ``metric`` at each step of each trial, coloured by what became of it;
 * markers where a trial was stopped, paused and resumed. */
export function intermediateFigure(study, trials, metric) {
  const lines = new Map(GROUPS.map((g) => [g.name, { x: [], y: [], c: [] }]));
  const marks = { stopped: { x: [], y: [], c: [] }, paused: { x: [], y: [], c: [] }, resumed: { x: [], y: [], c: [] } };
  for (const t of trials) {
    const steps = t.measurements
      .map((m) => [m.step, measured(m, metric)])
      .filter(([, v]) => v !== null)
      .sort((a, b) => a[0] - b[0]);
    if (!steps.length) continue;
    const line = lines.get(groupOf(t.state).name);
    for (const [step, v] of steps) {
      line.x.push(step);
      line.y.push(v);
      line.c.push(t.number);
    }
    line.x.push(null);
    line.y.push(null);
    line.c.push(null);
    const [lastStep, lastValue] = steps[steps.length - 1];
    if (t.state === "pruned") push(marks.stopped, lastStep, lastValue, t.number);
    if (t.state === "paused") push(marks.paused, lastStep, lastValue, t.number);
    if (t.resume_from_step !== null && t.resume_from_step !== undefined) {
      const at = steps.filter(([s]) => s <= t.resume_from_step).pop() || steps[0];
      push(marks.resumed, t.resume_from_step, at[1], t.number);
    }
  }
  const total = [...lines.values()].reduce((n, l) => n + l.x.length, 0);
  const data = GROUPS.map((g) => {
    const line = lines.get(g.name);
    return {
      type: scatterType(total),
      mode: "lines",
      name: g.name,
      x: line.x,
      y: line.y,
      customdata: line.c,
      connectgaps: false,
      line: { color: g.color, width: 1 },
      opacity: trials.length > 1000 ? 0.2 : 0.7, // many curves: their density shows
      hovertemplate: `trial %{customdata}<br>step %{x}<br>${metric.name} %{y}<extra>${g.name}</extra>`,
    };
  });
  const symbols = { stopped: "x", paused: "diamond-open", resumed: "triangle-right" };
  for (const [name, m] of Object.entries(marks)) {
    data.push({
      type: scatterType(total),
      mode: "markers",
      name: `${name} here`,
      x: m.x,
      y: m.y,
      customdata: m.c,
      marker: { symbol: symbols[name], size: 9, color: name === "resumed" ? "#54a24b" : name === "paused" ? "#f58518" : "#e45756" },
      hovertemplate: `trial %{customdata} ${name} at step %{x}<extra></extra>`,
    });
  }
  const layout = {
    ...BASE_LAYOUT,
    xaxis: { title: { text: study.fidelity ? `step (${study.fidelity.name})` : "step" } },
    yaxis: { title: { text: metric.name } },
  };
  const any = data.some((trace) => trace.x.length);
  return { data, layout, empty: any ? "" : "no trial has reported intermediate values" };
}

function push(series, x, y, c) {
  series.x.push(x);
  series.y.push(y);
  series.c.push(c);
}

/** An ISO time as plotly's local, time-zone-less date string. */
export function localStamp(iso) {
  const d = new Date(iso);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** When each trial ran, one row per worker (``client_id``), coloured by state. */
export function timelineFigure(trials, now = Date.now()) {
  const series = new Map(GROUPS.map((g) => [g.name, { x: [], y: [], c: [] }]));
  const workers = new Set();
  for (const t of trials) {
    if (!t.started_at) continue;
    const worker = t.client_id || "(no client id)";
    workers.add(worker);
    const end = endOf(t) || new Date(now).toISOString();
    const s = series.get(groupOf(t.state).name);
    s.x.push(localStamp(t.started_at), localStamp(end), null);
    s.y.push(worker, worker, null);
    s.c.push(t.number, t.number, null);
  }
  const total = [...series.values()].reduce((n, s) => n + s.x.length, 0);
  const data = GROUPS.map((g) => ({
    type: scatterType(total),
    mode: "lines+markers",
    name: g.name,
    x: series.get(g.name).x,
    y: series.get(g.name).y,
    customdata: series.get(g.name).c,
    connectgaps: false,
    line: { color: g.color, width: 6 },
    marker: { color: g.color, size: 4 },
    hovertemplate: `trial %{customdata}<br>%{y}<br>%{x}<extra>${g.name}</extra>`,
  }));
  const sorted = [...workers].sort();
  const layout = {
    ...BASE_LAYOUT,
    height: Math.max(260, 80 + sorted.length * 28),
    margin: { ...BASE_LAYOUT.margin, l: 160 },
    xaxis: { type: "date", title: { text: "time" } },
    yaxis: { type: "category", categoryorder: "array", categoryarray: sorted, automargin: true },
  };
  return { data, layout, workers: sorted.length, empty: sorted.length ? "" : "no trial has started yet" };
}

/** Hypervolume after each completed trial, from GET .../hypervolume (x: completion order). */
export function hypervolumeFigure(hv) {
  const history = hv.history;
  const data = [{
    type: scatterType(history.length),
    mode: "lines+markers",
    name: "hypervolume",
    x: history.map((_, i) => i + 1),
    y: history.map((p) => p.hypervolume),
    customdata: history.map((p) => p.number),
    line: { color: "#f58518", shape: "hv" },
    marker: { size: 4 },
    hovertemplate: "trial %{customdata}<br>hypervolume %{y}<extra></extra>",
  }];
  const layout = {
    ...BASE_LAYOUT,
    xaxis: { title: { text: "completed trials" } },
    yaxis: { title: { text: "hypervolume" } },
  };
  return { data, layout, empty: history.length ? "" : "no completed trials yet" };
}

/** The sentence under the hypervolume's title: its reference point and where it came from. */
export function referenceText(hv) {
  const point = hv.objectives.map((name) => `${name} ${hv.reference_point[name]}`).join(", ");
  const source = hv.reference_source === "spec" ? "from the spec" : `inferred: ${hv.reference_rule}`;
  return `reference point ${point} (${source}); ${hv.n_feasible} feasible of ${hv.n_trials} completed trials`;
}
