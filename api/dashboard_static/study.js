// The study page: header and actions, every figure, the trial table, the spec and the
// held-out evaluation, kept live by incremental trial fetches (TrialStore). The header
// and the table follow the data at once; figures are drawn when on screen (LazyPlots).

import { act, download, enqueueForm, enqueueTrial, setStudyState, stopTrial } from "./actions.js";
import { API, ApiError, TrialStore, api } from "./api.js";
import { badge, fill, h, json, num, toast, when } from "./dom.js";
import { LazyPlots, loadPlotly } from "./lazy.js";
import {
  bestTrial, contourFigure, countsOf, historyFigure, importanceFigure, objectives, paretoFigure, parcoordsFigure, sliceFigure,
} from "./plots.js";
import { hypervolumeFigure, intermediateFigure, referenceText, timelineFigure } from "./plots_time.js";
import { TrialTable } from "./table.js";

const POLL_MS = 2000;
/** The study itself (state, evaluation; it costs the server more than a trial page) is
 * fetched again when trials changed, at most this often, and at the latest after STUDY_MAX_MS. */
const STUDY_MIN_MS = 5000;
const STUDY_MAX_MS = 15000;
/** The first request asks for fewer trials, so the table shows sooner on a large study. */
const FIRST_PAGE = 200;
const IMPORTANCE_EVERY_MS = 30000;
/** While the first load pages through a large study, figures are drawn with the first
 * page, then at most this often (a redraw of 10,000 points is not free), then at the end. */
const LOADING_REDRAW_MS = 4000;
const CONFIG = { displaylogo: false, responsive: true };
const SPEC_FIELDS = [
  "name", "description", "parameters", "metrics", "algorithm", "algorithm_options", "early_stopping",
  "fidelity", "max_trials", "max_active_trials", "max_failed_trials", "retries", "seed", "objective", "metadata",
  "hypervolume_reference",
];

/** Trials that count against ``max_trials`` (every state but failed). */
export function budgetUsed(counts) {
  return Object.entries(counts || {}).reduce((n, [s, c]) => (s === "failed" ? n : n + c), 0);
}

/** The study's budget: trials used of ``max_trials`` (a bar) and how many are finished. */
export function progress(study) {
  const c = study.trial_counts;
  const used = budgetUsed(c);
  const max = study.max_trials;
  const done = (c.completed || 0) + (c.pruned || 0) + (c.infeasible || 0);
  const text = max ? ` ${used} / ${max} trials · ${done} finished` : ` ${used} trials (no max_trials) · ${done} finished`;
  const bar = max ? h("progress", { max, value: Math.min(used, max) }) : null;
  return h("span", { class: "progress", "data-used": used, "data-max": max ?? "" }, bar, text);
}

function card(title, id, ...body) {
  return h("section", { class: "card", id }, h("h2", {}, title), ...body);
}

function plotBox(id) {
  return [h("p", { id: `${id}-note`, class: "plot-note muted", hidden: true }), h("div", { id, class: "plot" })];
}

export class StudyPage {
  constructor(main, studyId, setLive) {
    this.main = main;
    this.id = studyId;
    this.setLive = setLive;
    this.store = new TrialStore(studyId);
    this.timer = null;
    this.stopped = false;
    this.polling = false;
    this.loading = true;
    this.importance = null;
    this.importanceAsked = false; // the first answer (or refusal) is in
    this.importanceBusy = false;
    this.importanceNote = "importance not loaded yet";
    this.importanceAt = 0;
    this.importanceCompleted = -1;
    this.hypervolume = null; // GET .../hypervolume of a multi-objective study
    this.hypervolumeNote = "hypervolume not loaded yet";
    this.hypervolumeCompleted = -1;
    this.hypervolumeBusy = false;
    this.hypervolumeAsked = false; // the first answer (or refusal) is in
    this.domQueued = false;
    this.lastInvalidate = 0;
    this.lazy = new LazyPlots((id) => this._draw(id));
  }

  async start() {
    // the study and a first page of trials at the same time; the other pages once the
    // study is there (the server answers one request at a time faster than two)
    let studyArrived;
    const studyReady = new Promise((resolve) => (studyArrived = resolve));
    const trials = this.store.fetch(() => studyReady.then(() => this._pageArrived()), FIRST_PAGE);
    trials.catch(() => {}); // awaited below; the study's error (404, ...) is the one shown
    this.study = await api(`${API}/studies/${this.id}`);
    this.studyAt = Date.now();
    this.metric = objectives(this.study)[0];
    this._layout();
    this._refreshDom();
    studyArrived();
    requestAnimationFrame(() => setTimeout(() => this._charts(), 0)); // once the table is painted
    await trials;
    this.loading = false;
    this._refreshDom();
    this.lazy.invalidate();
    this._refreshImportance();
    this._refreshHypervolume();
    this._schedule();
  }

  /** Fetch the hypervolume history (multi-objective studies) when completed trials changed. */
  _refreshHypervolume() {
    const completed = this._counts().completed || 0;
    if (objectives(this.study).length < 2 || this.hypervolumeBusy) return;
    if (completed === this.hypervolumeCompleted) return;
    this.hypervolumeBusy = true;
    api(`${API}/studies/${this.id}/hypervolume`)
      .then((hv) => {
        this.hypervolume = hv;
        this.hypervolumeCompleted = completed;
      }, (error) => {
        this.hypervolumeNote = `hypervolume not available: ${error.message}`;
      })
      .then(() => {
        this.hypervolumeAsked = true;
        if (!this.stopped) this.lazy.invalidate();
      })
      .finally(() => (this.hypervolumeBusy = false));
  }

  _refreshImportance() {
    if (this.importanceBusy) return;
    this.importanceBusy = true;
    this._loadImportance()
      .then((fresh) => fresh && !this.stopped && this.lazy.invalidate(), () => {})
      .finally(() => (this.importanceBusy = false));
  }

  async _charts() {
    try {
      await loadPlotly();
      this.lazy.pump();
    } catch (error) {
      toast(`${error.message}: the figures cannot be drawn`, "error");
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.lazy.stop();
  }

  _schedule() {
    clearTimeout(this.timer);
    if (!this.stopped) this.timer = setTimeout(() => this._poll(), POLL_MS);
  }

  /** Fetch what changed: the trials updated since the last fetch, and the study when due
   * (``force``: now, after an action). */
  async _poll(force = false) {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      const changed = await this.store.fetch();
      const age = Date.now() - this.studyAt;
      let studyChanged = false;
      if (force || age > STUDY_MAX_MS || (changed && age > STUDY_MIN_MS)) {
        const study = await api(`${API}/studies/${this.id}`);
        this.studyAt = Date.now();
        studyChanged = JSON.stringify(study) !== JSON.stringify(this.study);
        this.study = study;
      }
      this._refreshImportance(); // in the background: a fit on a large study takes a while
      this._refreshHypervolume();
      if (changed || studyChanged) this._refreshDom();
      if (changed || studyChanged) this.lazy.invalidate();
      this.setLive(true);
    } catch (error) {
      this.setLive(false, error.message);
    } finally {
      this.polling = false;
      document.body.dataset.syncs = String(Number(document.body.dataset.syncs || 0) + 1);
      this._schedule();
    }
  }

  _pageArrived() {
    if (this.stopped) throw new Error("the page was left"); // no more pages
    this._queueDom();
    if (Date.now() - this.lastInvalidate > LOADING_REDRAW_MS) {
      this.lastInvalidate = Date.now();
      this.lazy.invalidate();
    }
  }

  /** Fetch the importance when completed trials changed (at most every 30 s); true if new. */
  async _loadImportance() {
    const completed = this._counts().completed || 0;
    const due = Date.now() - this.importanceAt > IMPORTANCE_EVERY_MS || this.importanceCompleted < 0;
    if (completed === this.importanceCompleted || !due) return false;
    this.importanceAt = Date.now();
    this.importanceCompleted = completed;
    const metric = this.metric;
    let importance = null;
    let note = "";
    try {
      const q = new URLSearchParams({ objective: metric.name });
      importance = await api(`${API}/studies/${this.id}/importance?${q}`);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 401) throw error;
      const missing = error.status === 404 && !/study/.test(error.message);
      note = missing
        ? "importance not available: this server has no importance endpoint"
        : `importance not available: ${error.message}`;
    }
    if (metric !== this.metric) { // the objective was switched meanwhile: ask again
      this.importanceCompleted = -1;
      return false;
    }
    this.importance = importance;
    this.importanceNote = note;
    this.importanceAsked = true;
    return true;
  }

  _layout() {
    const s = this.study;
    const multi = objectives(s).length > 1;
    this.header = h("div", { class: "study-head" });
    this.objectiveSelect = multi
      ? h("select", { id: "objective-select", onchange: () => this._setMetric(this.objectiveSelect.value) },
        objectives(s).map((m) => h("option", { value: m.name }, m.name)))
      : null;
    this.evaluation = h("div", { id: "evaluation" });
    this.importanceStatus = h("p", { id: "importance-status", class: "muted" });
    this.contourStatus = h("p", { id: "contour-status", class: "muted" });
    this.hypervolumeStatus = h("p", { id: "hypervolume-status", class: "muted" });
    const tableRoot = h("div", { id: "trials" });
    const form = enqueueForm(s, (params, f) => act("trial queued: the next suggest hands it out",
      () => enqueueTrial(this.id, params), (trial) => {
        f.dataset.queued = String(trial.number);
        return this._pollNow();
      }));
    fill(this.main,
      this.header,
      h("div", { class: "cards" },
        card("Optimization history", "card-history",
          this.objectiveSelect && h("label", {}, "objective ", this.objectiveSelect), plotBox("plot-history")),
        card("CV score and held-out test score", "card-evaluation", this.evaluation),
        card("Parameter importance", "card-importance", this.importanceStatus, plotBox("plot-importance")),
        card("Contour of the two most important parameters", "card-contour", this.contourStatus, plotBox("plot-contour")),
        card("Trials", "card-trials", tableRoot),
        card("Parallel coordinates", "card-parcoords", plotBox("plot-parcoords")),
        card("Slices", "card-slice", plotBox("plot-slice")),
        card("Intermediate values", "card-intermediate", plotBox("plot-intermediate")),
        multi ? card("Pareto front", "card-pareto", plotBox("plot-pareto")) : null,
        multi ? card("Hypervolume", "card-hypervolume", this.hypervolumeStatus, plotBox("plot-hypervolume")) : null,
        card("Trials per worker", "card-timeline", plotBox("plot-timeline")),
        card("Enqueue a trial", "card-enqueue", form),
        card("Spec", "card-spec", h("pre", { id: "spec" }, json(Object.fromEntries(SPEC_FIELDS.map((k) => [k, s[k]])))))));
    this.table = new TrialTable(tableRoot, s, {
      getTrials: () => this.store.list(),
      href: (t) => `#/study/${this.id}/trial/${t.number}`,
      actions: (t) => (t.state === "active"
        ? h("button", {
          class: "small",
          "data-stop": t.number,
          onclick: () => act(`trial ${t.number} asked to stop`, () => stopTrial(this.id, t.number), () => this._pollNow()),
        }, "stop")
        : null),
    });
    for (const id of ["plot-history", "plot-importance", "plot-contour", "plot-parcoords", "plot-slice",
      "plot-intermediate", "plot-pareto", "plot-hypervolume", "plot-timeline"]) this.lazy.watch(id);
  }

  async _pollNow() {
    while (this.polling) await new Promise((r) => setTimeout(r, 50));
    await this._poll(true);
  }

  /** Trials by state: counted from the trials once all are in (current between two
   * fetches of the study), from the study while they load. */
  _counts() {
    return this.loading ? this.study.trial_counts : countsOf(this.store.list());
  }

  _setMetric(name) {
    this.metric = objectives(this.study).find((m) => m.name === name);
    this.importanceCompleted = -1;
    this.importanceAsked = false;
    this._refreshDom();
    this.lazy.invalidate();
    this._refreshImportance();
  }

  _queueDom() {
    if (this.domQueued) return;
    this.domQueued = true;
    requestAnimationFrame(() => {
      this.domQueued = false;
      this._refreshDom();
    });
  }

  /** The parts that are plain DOM: header, evaluation, table. */
  _refreshDom() {
    if (this.stopped) return;
    this._renderHeader();
    this._renderEvaluation();
    this.table.render();
  }

  /** Draw one figure (called by LazyPlots when it is on screen and out of date). */
  _draw(id) {
    const s = this.study;
    const trials = this.store.list();
    const m = this.metric;
    const builders = {
      "plot-history": () => historyFigure(s, trials, m),
      "plot-parcoords": () => parcoordsFigure(s, trials, m),
      "plot-slice": () => sliceFigure(s, trials, m),
      "plot-intermediate": () => intermediateFigure(s, trials, m),
      "plot-timeline": () => timelineFigure(trials),
      "plot-pareto": () => paretoFigure(s, trials),
      "plot-importance": () => this._importanceFigure(),
      "plot-hypervolume": () => this._hypervolumeFigure(),
      "plot-contour": () => this._contourFigure(trials),
    };
    this._plot(id, builders[id]);
    if (id === "plot-hypervolume") return this.hypervolumeAsked;
    return !id.match(/importance|contour/) || this.importanceAsked;
  }

  _hypervolumeFigure() {
    const hv = this.hypervolume;
    fill(this.hypervolumeStatus, hv ? referenceText(hv) : this.hypervolumeNote);
    return hv ? hypervolumeFigure(hv) : { empty: " " };
  }

  _importanceFigure() {
    const imp = this.importance;
    fill(this.importanceStatus, imp ? `${imp.n_trials} completed trials, objective ${imp.objective}` : this.importanceNote);
    return imp ? importanceFigure(imp) : { empty: " " };
  }

  _contourFigure(trials) {
    const imp = this.importance;
    if (!imp) {
      fill(this.contourStatus, `${this.importanceNote}, so the two most important parameters are not known`);
      return { empty: " " };
    }
    const names = imp.params.map((p) => p.name).filter((n) => this.study.parameters.some((p) => p.name === n));
    if (names.length < 2) {
      fill(this.contourStatus, "a contour needs two parameters");
      return { empty: " " };
    }
    fill(this.contourStatus, `${names[0]} × ${names[1]}: mean ${this.metric.name} per cell`);
    return contourFigure(this.study, trials, this.metric, names.slice(0, 2));
  }

  /** Draw ``build()`` into the plot ``id``, or say why there is nothing to draw. */
  _plot(id, build) {
    const div = document.getElementById(id);
    const note = document.getElementById(`${id}-note`);
    try {
      const { data, layout, empty } = build();
      note.className = "plot-note muted";
      note.hidden = !empty || !empty.trim();
      fill(note, empty || "");
      if (empty) {
        Plotly.purge(div);
        div.hidden = true;
        return;
      }
      div.hidden = false;
      Plotly.react(div, data, layout, CONFIG);
    } catch (error) {
      Plotly.purge(div);
      div.hidden = true;
      note.hidden = false;
      note.className = "plot-note error";
      fill(note, `could not draw: ${error.message}`);
    }
  }

  _renderHeader() {
    const s = this.study;
    const single = objectives(s).length === 1;
    const best = !single ? null
      : this.loading ? (s.best_trial && s.best_trial.values ? s.best_trial : null)
        : bestTrial(s, this.store.list(), this.metric);
    const paused = s.state === "paused";
    const loaded = this.store.byNumber.size;
    fill(this.header,
      h("div", { class: "title" }, h("h1", {}, s.name), badge(s.state),
        h("span", { class: "muted" }, ` #${s.id} · ${s.algorithm} · project ${s.project}`)),
      h("div", { class: "facts" },
        h("span", {}, "progress ", progress({ ...s, trial_counts: this._counts() })),
        h("span", {}, "best ", best
          ? h("a", { href: `#/study/${s.id}/trial/${best.number}` }, `${num(best.values[this.metric.name])} (trial ${best.number})`)
          : single ? "—" : "see the Pareto front"),
        h("span", {}, "updated ", when(s.updated_at)),
        s.completion_reason ? h("span", {}, `completed: ${s.completion_reason}`) : null,
        this.loading ? h("span", { id: "loading" }, `loading trials… ${loaded}`) : null),
      h("div", { class: "row actions" },
        s.state === "completed" ? null : h("button", {
          id: paused ? "resume-study" : "pause-study",
          onclick: () => act(paused ? "study resumed" : "study paused",
            () => setStudyState(this.id, paused ? "active" : "paused"), () => this._pollNow()),
        }, paused ? "Resume study" : "Pause study"),
        h("button", { id: "export-csv", onclick: () => download(this.id, "csv") }, "Download CSV"),
        h("button", { id: "export-jsonl", onclick: () => download(this.id, "jsonl") }, "Download JSON lines")));
  }

  _renderEvaluation() {
    const e = this.study.evaluation;
    if (!e) {
      fill(this.evaluation, h("p", { class: "muted" },
        "No held-out evaluation: managed studies with a test_size get one after their run."));
      return;
    }
    if (e.state === "failed") {
      fill(this.evaluation, h("p", { class: "error" }, `The held-out evaluation failed: ${e.error || "unknown error"}`));
      return;
    }
    fill(this.evaluation, h("table", { class: "grid kv" },
      h("tr", {}, h("th", {}, "trial"), h("td", {}, e.trial_number ?? "—")),
      h("tr", {}, h("th", {}, "CV score"), h("td", { id: "cv-score" }, num(e.cv_score))),
      h("tr", {}, h("th", {}, "held-out test score"), h("td", { id: "test-score" }, num(e.test_score))),
      e.params ? h("tr", {}, h("th", {}, "params"), h("td", {}, h("code", {}, JSON.stringify(e.params)))) : null));
  }
}
