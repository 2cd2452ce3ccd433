// The studies list: state, progress against the budget, best value, algorithm and the
// last update of every study the key may see, refreshed every few seconds.

import { allStudies } from "./api.js";
import { badge, fill, h, num, when } from "./dom.js";
import { objectives } from "./plots.js";
import { progress } from "./study.js";

const POLL_MS = 10000;

function bestOf(study) {
  const objs = objectives(study);
  if (objs.length > 1) return `${objs.length} objectives (Pareto front)`;
  const best = study.best_trial;
  if (!best || !best.values) return "—";
  return `${num(best.values[objs[0].name])} (trial ${best.number})`;
}

export class StudiesPage {
  constructor(main, setLive) {
    this.main = main;
    this.setLive = setLive;
    this.timer = null;
    this.stopped = false;
  }

  async start() {
    this.body = h("tbody");
    this.count = h("p", { class: "muted", id: "studies-count" });
    fill(this.main,
      h("section", { class: "card wide" },
        h("h2", {}, "Studies"),
        this.count,
        h("div", { class: "scroll" },
          h("table", { id: "studies-table", class: "grid" },
            h("thead", {}, h("tr", {}, ["id", "name", "state", "progress", "best", "algorithm", "updated"].map((c) => h("th", {}, c)))),
            this.body))));
    await this.refresh();
    this._schedule();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  _schedule() {
    if (!this.stopped) this.timer = setTimeout(() => this._poll(), POLL_MS);
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
    const studies = await allStudies();
    if (this.stopped) return;
    fill(this.count, studies.length ? `${studies.length} studies` : "No studies yet: create one with the SDK, the CLI or POST /api/v1/studies.");
    fill(this.body, studies.map((s) => h("tr", { "data-id": s.id },
      h("td", {}, String(s.id)),
      h("td", {}, h("a", { href: `#/study/${s.id}` }, s.name)),
      h("td", {}, badge(s.state)),
      h("td", {}, progress(s)),
      h("td", { class: "num" }, bestOf(s)),
      h("td", {}, s.algorithm),
      h("td", {}, when(s.updated_at)))));
  }
}
