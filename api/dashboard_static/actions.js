// What a user can do from the study page: pause or resume the study, stop a trial,
// enqueue a trial, download the trials (CSV or JSON lines). Every action is an API call
// with the signed-in key; the API's refusal (403 for a viewer key, 409 ...) is shown.

import { API, api, fetchApi } from "./api.js";
import { h, toast } from "./dom.js";

/** Run ``call``; on success say ``done`` and call ``after``; on failure show the error. */
export async function act(done, call, after) {
  try {
    const result = await call();
    toast(done);
    if (after) await after(result);
    return result;
  } catch (error) {
    toast(error.message, "error");
    return null;
  }
}

export function setStudyState(studyId, state) {
  return api(`${API}/studies/${studyId}`, { method: "PATCH", body: { state } });
}

export function stopTrial(studyId, number) {
  return api(`${API}/studies/${studyId}/trials/${number}/stop`, { method: "POST", body: {} });
}

/** A form with one field per parameter; ``submit(params)`` queues the trial. */
export function enqueueForm(study, submit) {
  const inputs = study.parameters.map((p) => {
    const control = p.values
      ? h("select", { name: p.name }, h("option", { value: "" }, "(none)"),
        p.values.map((v, i) => h("option", { value: String(i) }, String(v))))
      : h("input", { name: p.name, type: "number", step: "any", placeholder: `${p.low} … ${p.high}` });
    return { p, control };
  });
  const form = h("form", { id: "enqueue-form", class: "enqueue" },
    inputs.map(({ p, control }) => h("label", {}, p.name, control)),
    h("button", { type: "submit" }, "Enqueue"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = {};
    for (const { p, control } of inputs) {
      if (control.value === "") continue; // a conditional parameter left out
      params[p.name] = p.values ? p.values[Number(control.value)] : Number(control.value);
    }
    submit(params, form);
  });
  return form;
}

export function enqueueTrial(studyId, params) {
  return api(`${API}/studies/${studyId}/trials`, { method: "POST", body: { params, state: "requested" } });
}

/** Download every trial as ``format`` (csv or jsonl) through the API, with the key. */
export async function download(studyId, format) {
  try {
    const resp = await fetchApi(`${API}/studies/${studyId}/trials?format=${format}`);
    const type = resp.headers.get("Content-Type") || "";
    if (type.split(";")[0].trim() === "application/json") { // a server without exports ignores format
      toast(`${format} export not available on this server`, "error");
      return;
    }
    const url = URL.createObjectURL(await resp.blob());
    const a = h("a", { href: url, download: `study-${studyId}-trials.${format}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    toast(error.message, "error");
  }
}
