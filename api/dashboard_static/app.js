// The dashboard's entry point: routes in the URL fragment, the sign-in box for servers
// with API keys, and the live indicator.
//   #/                          studies
//   #/study/<id>                one study
//   #/study/<id>/trial/<number> one trial

import { ApiError, getKey, onSignIn, setKey } from "./api.js";
import { fill, h } from "./dom.js";
import { StudiesPage } from "./studies.js";
import { StudyPage } from "./study.js";
import { TrialPage } from "./trial.js";

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const live = document.getElementById("live");
const signOut = document.getElementById("sign-out");
let page = null;

/** Ask for a key in the sign-in box; resolves when the user has entered one. */
function askForKey(message, hadKey) {
  const dialog = document.getElementById("sign-in");
  const form = document.getElementById("sign-in-form");
  const input = document.getElementById("api-key");
  const error = document.getElementById("sign-in-error");
  error.hidden = !hadKey;
  error.textContent = hadKey ? message : "";
  input.value = "";
  document.body.dataset.signIn = "open";
  if (!dialog.open) dialog.showModal();
  input.focus();
  return new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      setKey(key);
      dialog.close();
      document.body.dataset.signIn = "closed";
      signOut.hidden = false;
      resolve();
    };
  });
}

function setLive(ok, message) {
  live.className = ok ? "live ok" : "live down";
  live.title = ok ? `live: updated ${new Date().toLocaleTimeString()}` : `not updating: ${message}`;
}

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (parts[0] === "study" && /^\d+$/.test(parts[1] || "")) {
    if (parts[2] === "trial" && /^\d+$/.test(parts[3] || "")) {
      return { name: "trial", study: Number(parts[1]), number: Number(parts[3]) };
    }
    return { name: "study", study: Number(parts[1]) };
  }
  return { name: "studies" };
}

function showCrumbs(r) {
  const items = [h("a", { href: "#/" }, "studies")];
  if (r.study !== undefined) items.push(" / ", h("a", { href: `#/study/${r.study}` }, `study ${r.study}`));
  if (r.number !== undefined) items.push(" / ", `trial ${r.number}`);
  fill(crumbs, items);
}

async function navigate() {
  if (page) page.stop();
  const r = route();
  showCrumbs(r);
  delete document.body.dataset.loaded;
  fill(main, h("p", { class: "muted" }, "Loading…"));
  if (r.name === "study") page = new StudyPage(main, r.study, setLive);
  else if (r.name === "trial") page = new TrialPage(main, r.study, r.number, setLive);
  else page = new StudiesPage(main, setLive);
  document.body.dataset.page = r.name;
  const current = page;
  try {
    await current.start();
    if (current !== page) return;
    document.body.dataset.loaded = "true";
    setLive(true);
  } catch (error) {
    if (current !== page) return;
    const text = error instanceof ApiError ? `${error.status} ${error.code}: ${error.message}` : String(error);
    fill(main, h("section", { class: "card wide" }, h("h2", {}, "Cannot show this page"), h("p", { class: "error", id: "page-error" }, text)));
    document.body.dataset.loaded = "error";
    setLive(false, text);
  }
}

onSignIn(askForKey);
document.getElementById("sign-in").addEventListener("cancel", (event) => event.preventDefault());
signOut.hidden = !getKey();
signOut.addEventListener("click", () => {
  setKey(null);
  signOut.hidden = true;
  navigate();
});
window.addEventListener("hashchange", navigate);
navigate();
