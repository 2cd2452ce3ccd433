// Small DOM and formatting helpers. Text from the API is only ever set as text
// (never as HTML), so study names, parameters and metadata cannot inject markup.

/** Create an element: h("a", {href: "#/", class: "x"}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = value;
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace the children of ``node``. */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A number for people: 6 significant digits, integers as they are. */
export function num(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e7)) return value.toExponential(4);
  return String(Number(value.toPrecision(6)));
}

/** A timestamp as local date and time (seconds), or a dash. */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** Seconds between two timestamps ("12.3 s", "4 min"; until now without an end), or a dash. */
export function duration(startIso, endIso) {
  if (!startIso) return "—";
  const end = endIso ? Date.parse(endIso) : Date.now();
  const s = (end - Date.parse(startIso)) / 1000;
  if (!Number.isFinite(s)) return "—";
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** A state name as a coloured badge. */
export function badge(state) {
  return h("span", { class: `badge state-${state}` }, state);
}

let toastTimer = null;

/** Show a short message at the top of the page (errors stay until closed). */
export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  fill(box, h("span", {}, message), h("button", { class: "link", onclick: () => (box.hidden = true) }, "×"));
  box.className = `toast ${kind}`;
  box.hidden = false;
  clearTimeout(toastTimer);
  if (kind !== "error") toastTimer = setTimeout(() => (box.hidden = true), 4000);
}

/** Pretty JSON for a <pre>. */
export function json(value) {
  return JSON.stringify(value, null, 2);
}

const RUNNING = ["active", "stopping"];

/** When a trial stopped running: completed_at, now while it runs, else its last update. */
export function endOf(trial) {
  if (trial.completed_at) return trial.completed_at;
  return RUNNING.includes(trial.state) ? null : trial.updated_at;
}
