// Figures of the search: history, parallel coordinates, slices, contour, importance and
// the Pareto front. Each function is pure: (study, trials, ...) -> {data, layout}.
// Large studies use WebGL traces (scattergl) and never one trace per trial.

const COLORS = { trials: "#4c78a8", best: "#e45756", violated: "#bab0ac", front: "#f58518" };
export const BASE_LAYOUT = {
  margin: { l: 60, r: 20, t: 30, b: 50 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
  font: { size: 12 },
  legend: { orientation: "h", y: 1.12 },
  hovermode: "closest",
};

/** Above this many points a trace uses WebGL (scattergl); below it SVG draws faster,
 * above all where WebGL runs in software. */
export const GL_POINTS = 1500;

/** The scatter trace type for ``n`` points. */
export function scatterType(n) {
  return n > GL_POINTS ? "scattergl" : "scatter";
}

/** The study's objective metrics (role "objective", the default). */
export function objectives(study) {
  return study.metrics.filter((m) => (m.role || "objective") === "objective");
}

/** As the server's ``is_feasible``: completed, objectives finite, constraints met. */
export function isFeasible(trial, study) {
  if (trial.state !== "completed" || !trial.values) return false;
  for (const m of study.metrics) {
    const role = m.role || "objective";
    if (role === "tracked") continue;
    const v = trial.values[m.name];
    if (typeof v !== "number" || !Number.isFinite(v)) return false;
    if (role === "constraint" && m.threshold !== null && m.threshold !== undefined) {
      if (m.goal === "maximize" ? v < m.threshold : v > m.threshold) return false;
    }
  }
  return true;
}

/** Completed trials with a finite value of ``metric`` (feasible or not). */
export function scored(trials, metric) {
  return trials.filter(
    (t) => t.state === "completed" && t.values && Number.isFinite(t.values[metric.name]),
  );
}

/** Trials by state, as the API's ``trial_counts``. */
export function countsOf(trials) {
  const counts = {};
  for (const t of trials) counts[t.state] = (counts[t.state] || 0) + 1;
  return counts;
}

/** The best feasible trial on ``metric`` (the lowest number wins ties), or null. */
export function bestTrial(study, trials, metric) {
  let best = null;
  for (const t of trials) {
    if (!isFeasible(t, study)) continue;
    if (best === null || better(metric, t.values[metric.name], best.values[metric.name])) best = t;
  }
  return best;
}

function better(metric, a, b) {
  return metric.goal === "maximize" ? a > b : a < b;
}

/** Optimization history: every scored trial and the best-so-far line over feasible ones. */
export function historyFigure(study, trials, metric) {
  const done = scored(trials, metric);
  const ok = done.filter((t) => isFeasible(t, study));
  const violated = done.filter((t) => !isFeasible(t, study));
  const bestX = [];
  const bestY = [];
  let best = null;
  for (const t of ok) {
    const v = t.values[metric.name];
    if (best === null || better(metric, v, best)) best = v;
    bestX.push(t.number);
    bestY.push(best);
  }
  const points = (list, name, color) => ({
    type: scatterType(done.length),
    mode: "markers",
    name,
    x: list.map((t) => t.number),
    y: list.map((t) => t.values[metric.name]),
    customdata: list.map((t) => t.number),
    marker: { color, size: 6 },
    hovertemplate: `trial %{x}<br>${metric.name} %{y}<extra></extra>`,
  });
  const data = [points(ok, "trials", COLORS.trials)];
  if (violated.length) data.push(points(violated, "constraint violated", COLORS.violated));
  data.push({
    type: scatterType(done.length),
    mode: "lines",
    name: "best so far",
    x: bestX,
    y: bestY,
    line: { color: COLORS.best, shape: "hv", width: 2 },
  });
  const layout = {
    ...BASE_LAYOUT,
    xaxis: { title: { text: "trial" } },
    yaxis: { title: { text: metric.name } },
  };
  return { data, layout, empty: done.length ? "" : `no completed trial has a ${metric.name} yet` };
}

/** How one parameter maps onto an axis: numbers as they are (log10 for log scales),
 * categories by their index in the spec. */
export function axisOf(param) {
  const categorical = param.type === "categorical" ||
    (param.type === "discrete" && param.values.some((v) => typeof v !== "number"));
  if (categorical) {
    const labels = param.values.map(String);
    return {
      label: param.name,
      value: (v) => labels.indexOf(String(v)),
      ticks: { tickvals: labels.map((_, i) => i), ticktext: labels },
      categorical: true,
    };
  }
  if (param.scale === "log") {
    return { label: `${param.name} (log10)`, value: (v) => Math.log10(v), ticks: {}, log: true };
  }
  return { label: param.name, value: (v) => v, ticks: {} };
}

function present(trial, name) {
  return trial.params[name] !== undefined && trial.params[name] !== null;
}

/** Parallel coordinates: one line per scored trial through every parameter and the objective.
 * A conditional parameter a trial does not have sits below its axis' range (labelled "—"). */
export function parcoordsFigure(study, trials, metric) {
  const done = scored(trials, metric);
  const dimensions = study.parameters.map((p) => {
    const axis = axisOf(p);
    const raw = done.map((t) => (present(t, p.name) ? axis.value(t.params[p.name]) : null));
    let [lo, hi] = extent(raw.filter((v) => v !== null), [0, 1]);
    const dim = { label: axis.label, values: raw, ...axis.ticks };
    if (raw.some((v) => v === null)) {
      const gap = (hi - lo || 1) * 0.15;
      lo -= gap;
      dim.values = raw.map((v) => (v === null ? lo : v));
      if (!axis.categorical) dim.range = [lo, hi];
      else {
        dim.tickvals = [lo, ...dim.tickvals];
        dim.ticktext = ["—", ...dim.ticktext];
      }
    }
    return dim;
  });
  const values = done.map((t) => t.values[metric.name]);
  dimensions.push({ label: metric.name, values });
  const data = [{
    type: "parcoords",
    dimensions,
    line: { color: values, colorscale: "Viridis", showscale: true, reversescale: metric.goal === "minimize" },
  }];
  const layout = { ...BASE_LAYOUT, margin: { l: 70, r: 70, t: 50, b: 30 } };
  return { data, layout, empty: done.length ? "" : "no completed trials yet" };
}

/** Slice plots: the objective against each parameter, one panel per parameter. */
export function sliceFigure(study, trials, metric) {
  const done = scored(trials, metric);
  const params = study.parameters;
  const columns = Math.min(3, params.length);
  const rows = Math.ceil(params.length / columns);
  const data = [];
  const layout = {
    ...BASE_LAYOUT,
    showlegend: false,
    height: Math.max(300, rows * 260),
    grid: { rows, columns, pattern: "independent", ygap: 0.35, xgap: 0.12 },
  };
  params.forEach((p, i) => {
    const suffix = i === 0 ? "" : String(i + 1);
    const having = done.filter((t) => present(t, p.name));
    const categorical = p.type === "categorical";
    data.push({
      type: scatterType(having.length),
      mode: "markers",
      name: p.name,
      x: having.map((t) => (categorical ? String(t.params[p.name]) : t.params[p.name])),
      y: having.map((t) => t.values[metric.name]),
      customdata: having.map((t) => t.number),
      xaxis: `x${suffix}`,
      yaxis: `y${suffix}`,
      marker: { size: 5, color: having.map((t) => t.number), colorscale: "Blues" },
      hovertemplate: `trial %{customdata}<br>${p.name} %{x}<br>${metric.name} %{y}<extra></extra>`,
    });
    layout[`xaxis${suffix}`] = {
      title: { text: p.name },
      type: categorical ? "category" : p.scale === "log" ? "log" : "linear",
    };
    layout[`yaxis${suffix}`] = { title: { text: i % columns === 0 ? metric.name : "" } };
  });
  return { data, layout, empty: done.length ? "" : "no completed trials yet" };
}

/** Mean objective on a grid over two parameters, with the trials on top. */
export function contourFigure(study, trials, metric, names) {
  const [pa, pb] = names.map((n) => study.parameters.find((p) => p.name === n));
  const [ax, ay] = [axisOf(pa), axisOf(pb)];
  const done = scored(trials, metric).filter((t) => present(t, pa.name) && present(t, pb.name));
  const xs = done.map((t) => ax.value(t.params[pa.name]));
  const ys = done.map((t) => ay.value(t.params[pb.name]));
  const zs = done.map((t) => t.values[metric.name]);
  const bins = Math.max(4, Math.min(24, Math.ceil(Math.sqrt(done.length)))); // ~1 trial per cell
  const gx = gridOf(xs, ax.categorical ? pa.values.length : bins, ax.categorical);
  const gy = gridOf(ys, ay.categorical ? pb.values.length : bins, ay.categorical);
  const sum = gy.centers.map(() => gx.centers.map(() => 0));
  const count = gy.centers.map(() => gx.centers.map(() => 0));
  xs.forEach((x, k) => {
    const i = gx.index(x);
    const j = gy.index(ys[k]);
    sum[j][i] += zs[k];
    count[j][i] += 1;
  });
  const z = sum.map((row, j) => row.map((s, i) => (count[j][i] ? s / count[j][i] : null)));
  const data = [
    {
      type: "contour",
      name: "mean",
      x: gx.centers,
      y: gy.centers,
      z,
      connectgaps: true,
      colorscale: "Viridis",
      reversescale: metric.goal === "minimize",
      colorbar: { title: { text: metric.name } },
      hoverinfo: "skip",
    },
    {
      type: scatterType(xs.length),
      mode: "markers",
      name: "trials",
      x: xs,
      y: ys,
      customdata: done.map((t) => t.number),
      marker: xs.length > 1000 // many trials: small marks that leave the contour visible
        ? { color: "rgba(255,255,255,0.5)", size: 3 }
        : { color: "rgba(255,255,255,0.85)", size: 5, line: { color: "#333", width: 1 } },
      hovertemplate: `trial %{customdata}<extra></extra>`,
    },
  ];
  const layout = {
    ...BASE_LAYOUT,
    showlegend: false,
    xaxis: { title: { text: ax.label }, ...ax.ticks },
    yaxis: { title: { text: ay.label }, ...ay.ticks },
  };
  return { data, layout, empty: done.length ? "" : `no completed trial has both ${pa.name} and ${pb.name}` };
}

/** [min, max] of ``values`` (``empty`` when there are none), without spreading big arrays. */
export function extent(values, empty) {
  if (!values.length) return [...empty];
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Bins over ``values``: centers and an index function (categories: one bin each). */
function gridOf(values, bins, categorical) {
  if (categorical) {
    const centers = Array.from({ length: bins }, (_, i) => i);
    return { centers, index: (v) => Math.max(0, Math.min(bins - 1, Math.round(v))) };
  }
  let [lo, hi] = extent(values, [0, 1]);
  if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
  const width = (hi - lo) / bins;
  const centers = Array.from({ length: bins }, (_, i) => lo + (i + 0.5) * width);
  return { centers, index: (v) => Math.max(0, Math.min(bins - 1, Math.floor((v - lo) / width))) };
}

/** Importance of each parameter and of each interacting pair (most important on top). */
export function importanceFigure(importance) {
  const params = [...importance.params].reverse();
  const pairs = [...importance.interactions].reverse();
  const bar = (name, labels, values, color) => ({
    type: "bar",
    orientation: "h",
    name,
    y: labels,
    x: values,
    marker: { color },
    hovertemplate: "%{y}: %{x:.3f}<extra></extra>",
  });
  const data = [
    bar("interactions", pairs.map((p) => p.params.join(" × ")), pairs.map((p) => p.importance), COLORS.front),
    bar("parameters", params.map((p) => p.name), params.map((p) => p.importance), COLORS.trials),
  ];
  const rows = params.length + pairs.length;
  const layout = {
    ...BASE_LAYOUT,
    height: Math.max(260, 60 + rows * 26),
    margin: { ...BASE_LAYOUT.margin, l: 160 },
    xaxis: { title: { text: `importance for ${importance.objective} (${importance.n_trials} trials)` } },
    yaxis: { automargin: true },
  };
  return { data, layout };
}

/** Indices of the non-dominated rows of ``costs`` (every column minimized). Identical rows
 * do not dominate each other, as on the server. Rows sorted lexicographically can only be
 * dominated by earlier rows, and then by one already on the front. */
export function paretoFront(costs) {
  const order = costs.map((_, i) => i).sort((a, b) => {
    for (let k = 0; k < costs[a].length; k++) {
      if (costs[a][k] !== costs[b][k]) return costs[a][k] - costs[b][k];
    }
    return a - b;
  });
  const front = [];
  for (const i of order) {
    const p = costs[i];
    const dominated = front.some((j) => {
      const q = costs[j];
      let strict = false;
      for (let k = 0; k < p.length; k++) {
        if (q[k] > p[k]) return false;
        if (q[k] < p[k]) strict = true;
      }
      return strict;
    });
    if (!dominated) front.push(i);
  }
  return front.sort((a, b) => a - b);
}

/** Pareto front: feasible trials in the first two objectives, the front highlighted. */
export function paretoFigure(study, trials) {
  const objs = objectives(study);
  const ok = trials.filter((t) => isFeasible(t, study));
  const costs = ok.map((t) => objs.map((m) => (m.goal === "maximize" ? -1 : 1) * t.values[m.name]));
  const onFront = paretoFront(costs).map((i) => ok[i]);
  const [mx, my] = objs;
  const trace = (list, name, color, mode) => ({
    type: scatterType(ok.length),
    mode,
    name,
    x: list.map((t) => t.values[mx.name]),
    y: list.map((t) => t.values[my.name]),
    customdata: list.map((t) => t.number),
    marker: { color, size: name === "trials" ? 5 : 8 },
    line: { color, shape: "hv" },
    hovertemplate: `trial %{customdata}<br>${mx.name} %{x}<br>${my.name} %{y}<extra></extra>`,
  });
  onFront.sort((a, b) => a.values[mx.name] - b.values[mx.name]);
  const data = [
    trace(ok, "trials", COLORS.trials, "markers"),
    trace(onFront, "Pareto front", COLORS.front, "lines+markers"),
  ];
  const layout = {
    ...BASE_LAYOUT,
    xaxis: { title: { text: `${mx.name} (${mx.goal})` } },
    yaxis: { title: { text: `${my.name} (${my.goal})` } },
  };
  return { data, layout, front: onFront, empty: ok.length ? "" : "no feasible completed trials yet" };
}
