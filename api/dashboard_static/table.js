// The trial table: sort by any column, filter by state, one page of rows in the DOM
// at a time (a 10,000-trial study renders 50 rows, not 10,000).

import { badge, duration, endOf, fill, h, num } from "./dom.js";

export const STATES = ["requested", "active", "stopping", "paused", "completed", "pruned", "infeasible", "failed"];
export const ROWS_PER_PAGE = 50;

function columnsOf(study) {
  const cols = [
    { key: "number", label: "#", get: (t) => t.number },
    { key: "state", label: "state", get: (t) => t.state },
  ];
  for (const m of study.metrics) {
    cols.push({ key: `v:${m.name}`, label: m.name, get: (t) => (t.values ? t.values[m.name] : undefined), number: true });
  }
  for (const p of study.parameters) {
    cols.push({ key: `p:${p.name}`, label: p.name, get: (t) => t.params[p.name], number: true, param: true });
  }
  cols.push({ key: "client_id", label: "worker", get: (t) => t.client_id });
  cols.push({
    key: "duration",
    label: "duration",
    get: (t) => (t.started_at ? (Date.parse(endOf(t) || new Date().toISOString()) - Date.parse(t.started_at)) : undefined),
    show: (t) => duration(t.started_at, endOf(t)),
  });
  return cols;
}

function missing(v) {
  return v === undefined || v === null;
}

function compare(a, b) {
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b));
}

/** A table of ``getTrials()`` rendered into ``root``; ``actions(trial)`` adds row buttons. */
export class TrialTable {
  constructor(root, study, { getTrials, href, actions }) {
    this.root = root;
    this.study = study;
    this.getTrials = getTrials;
    this.href = href;
    this.actions = actions;
    this.columns = columnsOf(study);
    this.sortKey = "number";
    this.descending = false;
    this.stateFilter = "";
    this.page = 0;
    this._build();
  }

  _build() {
    this.filter = h("select", { id: "state-filter", onchange: () => this.setFilter(this.filter.value) },
      h("option", { value: "" }, "all states"),
      STATES.map((s) => h("option", { value: s }, s)));
    this.prev = h("button", { id: "page-prev", onclick: () => this.setPage(this.page - 1) }, "‹ prev");
    this.next = h("button", { id: "page-next", onclick: () => this.setPage(this.page + 1) }, "next ›");
    this.info = h("span", { id: "page-info", class: "muted" });
    this.head = h("thead");
    this.body = h("tbody");
    const table = h("table", { id: "trial-table", class: "grid" }, this.head, this.body);
    fill(this.root,
      h("div", { class: "row" }, h("label", {}, "state ", this.filter), h("span", { class: "spacer" }), this.prev, this.info, this.next),
      h("div", { class: "scroll" }, table));
  }

  setFilter(state) {
    this.stateFilter = state;
    this.filter.value = state;
    this.page = 0;
    this.render();
  }

  setPage(page) {
    this.page = page;
    this.render();
  }

  sortBy(key) {
    if (this.sortKey === key) this.descending = !this.descending;
    else {
      this.sortKey = key;
      this.descending = false;
    }
    this.render();
  }

  /** The filtered, sorted rows (all pages). */
  rows() {
    let rows = this.getTrials();
    if (this.stateFilter) rows = rows.filter((t) => t.state === this.stateFilter);
    const col = this.columns.find((c) => c.key === this.sortKey) || this.columns[0];
    if (col.key !== "number" || this.descending) {
      const sign = this.descending ? -1 : 1;
      rows = [...rows].sort((a, b) => {
        const [x, y] = [col.get(a), col.get(b)];
        if (missing(x) || missing(y)) { // trials without the value go last either way
          return (missing(x) - missing(y)) || a.number - b.number;
        }
        return sign * compare(x, y) || a.number - b.number;
      });
    }
    return rows;
  }

  render() {
    const rows = this.rows();
    const pages = Math.max(1, Math.ceil(rows.length / ROWS_PER_PAGE));
    this.page = Math.max(0, Math.min(this.page, pages - 1));
    const shown = rows.slice(this.page * ROWS_PER_PAGE, (this.page + 1) * ROWS_PER_PAGE);
    this.prev.disabled = this.page === 0;
    this.next.disabled = this.page >= pages - 1;
    fill(this.info, `page ${this.page + 1} of ${pages} · ${rows.length} trials`);
    const arrow = this.descending ? " ▼" : " ▲";
    fill(this.head, h("tr", {},
      this.columns.map((c) => h("th", { "data-key": c.key, class: "sortable", onclick: () => this.sortBy(c.key) },
        c.label, c.key === this.sortKey ? arrow : "")),
      h("th", {}, "")));
    fill(this.body, shown.map((t) => this._row(t)));
  }

  _row(t) {
    const cells = this.columns.map((c) => {
      if (c.key === "number") return h("td", {}, h("a", { href: this.href(t) }, String(t.number)));
      if (c.key === "state") return h("td", {}, badge(t.state));
      if (c.show) return h("td", {}, c.show(t));
      const v = c.get(t);
      return h("td", { class: c.number && typeof v === "number" ? "num" : "" }, v === undefined ? "" : num(v));
    });
    return h("tr", { "data-number": t.number }, cells, h("td", {}, this.actions(t)));
  }
}
