// Every call to /api/v1 goes through here: the API key, the sign-in on 401, the
// error body, paging, and the incremental trial store behind the live updates.

const KEY = "tuneforge.apiKey";
export const API = "/api/v1";
/** Trials per request (the API's maximum page size): 10,000 trials are 10 requests. */
export const PAGE = 1000;
/** How far back each incremental fetch reaches before the previous one started. A trial
 * whose write committed a little after its updated_at was stamped is still picked up. */
const OVERLAP_MS = 5000;

/** An API error: the HTTP status and the body's code and message. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let askForKey = null;
let pendingSignIn = null;

/** ``handler(message, hadKey)`` resolves once the user has entered a key. */
export function onSignIn(handler) {
  askForKey = handler;
}

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

async function errorOf(resp) {
  try {
    const body = await resp.json();
    const e = body.error || {};
    return new ApiError(resp.status, e.code || String(resp.status), e.message || resp.statusText, e.details);
  } catch {
    return new ApiError(resp.status, String(resp.status), resp.statusText || "request failed");
  }
}

async function signIn(error, hadKey) {
  // Concurrent 401s share one prompt.
  if (!pendingSignIn) {
    pendingSignIn = Promise.resolve(askForKey(error.message, hadKey)).finally(() => {
      pendingSignIn = null;
    });
  }
  return pendingSignIn;
}

/** The Response of ``method path`` (2xx), asking for a key on 401 and trying again. */
export async function fetchApi(path, { method = "GET", body } = {}) {
  for (;;) {
    const key = getKey();
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    if (resp.status === 401 && askForKey) {
      const error = await errorOf(resp);
      if (key && getKey() === key) setKey(null); // a rejected key is forgotten
      await signIn(error, Boolean(key));
      continue;
    }
    if (!resp.ok) throw await errorOf(resp);
    return resp;
  }
}

/** The JSON body of ``method path`` (null for 204). */
export async function api(path, options = {}) {
  const resp = await fetchApi(path, options);
  return resp.status === 204 ? null : resp.json();
}

/** Every study the key may see, page by page. */
export async function allStudies() {
  const studies = [];
  let token = null;
  do {
    const q = new URLSearchParams({ page_size: String(PAGE) });
    if (token) q.set("page_token", token);
    const page = await api(`${API}/studies?${q}`);
    studies.push(...page.studies);
    token = page.next_page_token;
  } while (token);
  return studies;
}

/** The server's clock when it answered (from the Date header), in ms, or null. */
function serverTime(resp) {
  const date = resp.headers.get("Date");
  const ms = date ? Date.parse(date) : NaN;
  return Number.isFinite(ms) ? ms : null;
}

/**
 * A study's trials, kept current by incremental fetches: the first load pages through
 * every trial (``PAGE`` per request); each later ``sync`` asks only for trials updated
 * since shortly before the previous fetch started (``updated_after``).
 */
export class TrialStore {
  constructor(studyId) {
    this.studyId = studyId;
    this.byNumber = new Map();
    this.cursor = null; // ISO time for updated_after
    this.version = 0; // moves when any trial changed
    this._sorted = null;
  }

  /** Fetch trials (all, or updated after the cursor); ``onPage`` sees each page (and may
   * return a promise the next request waits for). The first
   * request may ask for fewer (``first``) so that something shows sooner. Returns how
   * many trials were new or changed. */
  async fetch(onPage, first = PAGE) {
    let token = null;
    let started = null;
    let changed = 0;
    let newest = 0;
    do {
      const q = new URLSearchParams({ page_size: String(token ? PAGE : first) });
      if (this.cursor) q.set("updated_after", this.cursor);
      if (token) q.set("page_token", token);
      const resp = await fetchApi(`${API}/studies/${this.studyId}/trials?${q}`);
      if (started === null) started = serverTime(resp);
      const page = await resp.json();
      for (const trial of page.trials) {
        newest = Math.max(newest, Date.parse(trial.updated_at || trial.created_at) || 0);
        if (this._merge(trial)) changed += 1;
      }
      token = page.next_page_token;
      if (changed && onPage) await onPage(this); // it may hold the next request back
    } while (token);
    const mark = started ?? (newest || null);
    if (mark !== null) this.cursor = new Date(mark - OVERLAP_MS).toISOString();
    return changed;
  }

  _merge(trial) {
    const old = this.byNumber.get(trial.number);
    if (old && old.updated_at === trial.updated_at && old.state === trial.state &&
        old.measurements.length === trial.measurements.length) {
      return false;
    }
    this.byNumber.set(trial.number, trial);
    this._sorted = null;
    this.version += 1;
    return true;
  }

  /** The trials by number. */
  list() {
    if (!this._sorted) this._sorted = [...this.byNumber.values()].sort((a, b) => a.number - b.number);
    return this._sorted;
  }
}
