// One trial: parameters, values, measurements (table and curve), metadata and its
// life (state, worker, times, retries), refreshed while it is unfinished.

import { API, api } from "./api.js";
import { badge, duration, endOf, fill, h, json, num, toast, when } from "./dom.js";
import { loadPlotly } from "./lazy.js";
import { BASE_LAYOUT, objectives } from "./plots.js";

const POLL_MS = 2000;
const FINISHED = ["completed", "pruned", "infeasible", "failed"];

function kv(rows) {
  return h("table", { class: "grid kv" },
    rows.filter(Boolean).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))));
}

export class TrialPage {
  constructor(main, studyId, number, setLive) {
    this.main = main;
    this.studyId = studyId;
    this.number = number;
    this.setLive = setLive;
    this.timer = null;
    this.stopped = false;
  }

  async start() {
    this.study = await api(`${API}/studies/${this.studyId}`);
    await this.refresh();
    this._schedule();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const div = document.getElementById("plot-measurements");
    if (div && window.Plotly) Plotly.purge(div);
  }

  _schedule() {
    if (!this.stopped && !FINISHED.includes(this.trial.state)) {
      this.timer = setTimeout(() => this._poll(), POLL_MS);
    }
  }

  async _poll() {
    try {
      await this.refresh();
      this.setLive(true);
    } catch (error) {
      this.setLive(false, error.message);
    }
    this._schedule();
  }

  async refresh() {
    const trial = await api(`${API}/studies/${this.studyId}/trials/${this.number}`);
    if (this.stopped) return;
    this.trial = trial;
    await this._render();
  }

  _render() {
    const t = this.trial;
    const metrics = this.study.metrics.map((m) => m.name);
    const extra = new Set();
    for (const m of t.measurements) for (const k of Object.keys(m.values)) if (!metrics.includes(k)) extra.add(k);
    const names = [...metrics.filter((n) => t.measurements.some((m) => n in m.values)), ...extra];
    const stop = t.state === "active"
      ? h("button", { id: "stop-trial", onclick: () => this._stop() }, "Stop trial")
      : null;
    fill(this.main,
      h("div", { class: "study-head" },
        h("div", { class: "title" },
          h("h1", {}, `Trial ${t.number}`), badge(t.state),
          h("span", { class: "muted" }, " of ", h("a", { href: `#/study/${this.studyId}` }, this.study.name))),
        h("div", { class: "row actions" }, stop)),
      h("div", { class: "cards" },
        h("section", { class: "card", id: "card-params" }, h("h2", {}, "Parameters"),
          kv(Object.entries(t.params).map(([k, v]) => [k, num(v)]))),
        h("section", { class: "card", id: "card-values" }, h("h2", {}, "Values"),
          t.values ? kv(Object.entries(t.values).map(([k, v]) => [k, num(v)])) : h("p", { class: "muted" }, "no final values yet")),
        h("section", { class: "card", id: "card-life" }, h("h2", {}, "Run"),
          kv([
            ["state", badge(t.state)],
            ["worker", t.client_id || "—"],
            ["created", when(t.created_at)],
            ["started", when(t.started_at)],
            ["completed", when(t.completed_at)],
            ["duration", duration(t.started_at, endOf(t))],
            ["lease until", when(t.lease_expires_at)],
            t.reason ? ["reason", t.reason] : null,
            t.retry_of !== null ? ["retry of", h("a", { href: `#/study/${this.studyId}/trial/${t.retry_of}` }, `trial ${t.retry_of}`)] : null,
            t.resume_from_step !== null && t.resume_from_step !== undefined ? ["resumed from step", String(t.resume_from_step)] : null,
          ])),
        h("section", { class: "card", id: "card-measurements" }, h("h2", {}, `Measurements (${t.measurements.length})`),
          h("div", { id: "plot-measurements", class: "plot" }),
          h("div", { class: "scroll short" }, h("table", { id: "measurements-table", class: "grid" },
            h("thead", {}, h("tr", {}, h("th", {}, "step"), names.map((n) => h("th", {}, n)), h("th", {}, "elapsed"))),
            h("tbody", {}, t.measurements.map((m) => h("tr", {},
              h("td", {}, String(m.step)),
              names.map((n) => h("td", { class: "num" }, num(m.values[n]))),
              h("td", {}, m.elapsed_seconds === null ? "—" : `${num(m.elapsed_seconds)} s`))))))),
        h("section", { class: "card", id: "card-metadata" }, h("h2", {}, "Metadata"),
          h("pre", { id: "metadata" }, json(t.metadata)))));
    return this._plot(names);
  }

  async _plot(names) {
    const div = document.getElementById("plot-measurements");
    const t = this.trial;
    if (!t.measurements.length) {
      div.hidden = true;
      return;
    }
    await loadPlotly();
    if (this.stopped || !div.isConnected) return;
    const steps = [...t.measurements].sort((a, b) => a.step - b.step);
    const objs = objectives(this.study).map((m) => m.name);
    const data = names.map((n) => ({
      type: "scatter",
      mode: "lines+markers",
      name: n,
      x: steps.filter((m) => n in m.values).map((m) => m.step),
      y: steps.filter((m) => n in m.values).map((m) => m.values[n]),
      visible: objs.includes(n) || names.length === 1 ? true : "legendonly",
    }));
    const layout = { ...BASE_LAYOUT, height: 280, xaxis: { title: { text: "step" } } };
    Plotly.react(div, data, layout, { displaylogo: false, responsive: true });
  }

  async _stop() {
    try {
      await api(`${API}/studies/${this.studyId}/trials/${this.number}/stop`, { method: "POST", body: {} });
      toast(`trial ${this.number} asked to stop`);
      await this.refresh();
    } catch (error) {
      toast(error.message, "error");
    }
  }
}
