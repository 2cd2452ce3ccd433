// @ts-check
/**
 * tuneforge client for JavaScript: a single, dependency-free ES module for
 * Node.js 18+ (it uses the global `fetch` and `AbortSignal.timeout`).
 *
 * ```js
 * import { Client } from "./tuneforge.mjs";
 * const client = new Client(); // TUNEFORGE_URL, TUNEFORGE_API_KEY
 * const study = await client.createStudy(spec, { ifExists: "return" });
 * for (;;) {
 *   const [trial] = await study.suggest();
 *   if (!trial) break;
 *   if (await trial.report(1, { loss: 0.4 })) { ... }
 *   await trial.complete({ loss: 0.3 });
 * }
 * console.log(await study.best());
 * ```
 *
 * The REST contract is docs/api.md; this module only
 * wraps it. Requests that are safe to repeat (GETs, suggest with this client's
 * `clientId`, measurements, heartbeats, complete, fail, checkpoint PUTs) are retried with
 * exponential backoff and jitter on network errors, timeouts and
 * 429 / 502 / 503 / 504; every other request is retried only on 429, which the
 * server answers before doing anything.
 *
 * @module tuneforge
 */

export const VERSION = "0.1.0";

const DEFAULT_URL = "http://127.0.0.1:8000";
const API_PREFIX = "/api/v1";
const RETRY_STATUSES = new Set([429, 502, 503, 504]);
/** Trial states after which the trial never changes again. */
const FINISHED = new Set(["completed", "pruned", "infeasible", "failed"]);
/** Most reports a trial holds back before it sends them (a report carries up to 1000). */
const MAX_HELD = 500;

// ---------------------------------------------------------------- types

/**
 * @typedef {Object} ClientOptions
 * @property {string} [url] Server address, e.g. `http://127.0.0.1:8000` (with or
 *   without `/api/v1`). Default: `TUNEFORGE_URL`, else `http://127.0.0.1:8000`.
 * @property {string} [apiKey] Sent as `Authorization: Bearer <apiKey>`.
 *   Default: `TUNEFORGE_API_KEY`; none when unset.
 * @property {string} [clientId] Identifies this worker to suggest; the same
 *   clientId gets back its own unfinished trials first, so a retried suggest
 *   never leaks a trial. Default: `node-<pid>-<random>`.
 * @property {number} [timeoutMs] Per-attempt timeout in milliseconds (default 30000).
 * @property {number} [maxRetries] Retries after the first attempt of a
 *   retryable request (default 3; 0 disables retries).
 * @property {number} [retryBaseMs] First backoff delay in milliseconds (default 200);
 *   it doubles on every retry.
 * @property {number} [retryMaxMs] Upper bound of one backoff delay, also of a
 *   server's `Retry-After` (default 5000).
 * @property {typeof fetch} [fetch] The fetch implementation (default: global `fetch`).
 * @property {number} [reportDelayMs] The longest a trial holds back reports at steps where
 *   the study's rule cannot decide (the reply's `next_decision_step`; see
 *   {@link Trial.report}), in milliseconds (default 2000; 0 sends every report at once).
 */

/**
 * A parameter of the search space (see docs/api.md "Studies").
 * @typedef {Object} ParameterSpec
 * @property {string} name
 * @property {"float"|"int"|"discrete"|"categorical"} type
 * @property {number} [low]
 * @property {number} [high]
 * @property {"linear"|"log"} [scale]
 * @property {number} [step]
 * @property {Array<string|number|boolean>} [values]
 * @property {{parent: string, values: Array<string|number|boolean>}} [condition]
 * @property {number} [grid_points]
 */

/**
 * @typedef {Object} MetricSpec
 * @property {string} name
 * @property {"maximize"|"minimize"} [goal]
 * @property {"objective"|"constraint"|"tracked"} [role]
 * @property {number} [threshold]
 */

/**
 * The `POST /studies` body. Field names are the REST API's (snake_case).
 * @typedef {Object} StudySpec
 * @property {string} name
 * @property {string} [description]
 * @property {ParameterSpec[]} parameters
 * @property {MetricSpec[]} metrics
 * @property {string} [algorithm]
 * @property {Record<string, unknown>} [algorithm_options]
 * @property {Record<string, unknown>} [early_stopping]
 * @property {Record<string, unknown> | null} [fidelity]
 * @property {number | null} [max_trials]
 * @property {number | null} [max_active_trials]
 * @property {number | null} [max_failed_trials]
 * @property {{max_retries?: number, lease_seconds?: number}} [retries]
 * @property {number} [seed]
 * @property {Record<string, unknown> | null} [objective]
 * @property {Record<string, unknown>} [metadata]
 */

/**
 * @typedef {Object} MeasurementData
 * @property {number} step
 * @property {Record<string, number>} values
 * @property {number | null} elapsed_seconds
 */

/**
 * A Trial as the server sends it.
 * @typedef {Object} TrialData
 * @property {number} number
 * @property {string} state
 * @property {Record<string, any>} params
 * @property {Record<string, number> | null} values
 * @property {string | null} client_id
 * @property {number | null} retry_of
 * @property {string | null} created_at
 * @property {string | null} [updated_at]
 * @property {string | null} started_at
 * @property {string | null} completed_at
 * @property {string | null} lease_expires_at
 * @property {string | null} reason
 * @property {Record<string, unknown>} metadata
 * @property {MeasurementData[]} measurements
 * @property {number | null} [resume_from_step]
 */

/**
 * A Study as the server sends it: the spec plus these fields.
 * @typedef {StudySpec & {
 *   id: number, state: string, project?: string, completion_reason?: string | null,
 *   created_at: string, updated_at: string, trial_counts: Record<string, number>,
 *   best_trial: TrialData | null
 * }} StudyData
 */

/**
 * @typedef {Object} RequestOptions
 * @property {Record<string, string|number|undefined|null>} [query]
 * @property {unknown} [body] sent as JSON
 * @property {Uint8Array} [bytes] sent as `application/octet-stream` instead of `body`
 * @property {boolean} [raw] return the reply's bytes (a Uint8Array) instead of its JSON
 * @property {boolean} [retry] Repeat on network errors and 429/502/503/504.
 * @property {() => Promise<any>} [onRetriedConflict] Called when a request that
 *   was retried after an uncertain failure gets 409: returns the reply to use
 *   instead (the first attempt took effect), or throws.
 */

// ---------------------------------------------------------------- errors

/**
 * Base class of every error this client throws.
 * `status` is the HTTP status (null when no reply came), `code` the API's
 * machine code (`not_found`, `conflict`, `invalid_spec`, ...), `message` the
 * API's message (it starts with the offending field), `details` the API's
 * details (e.g. `{field: "parameters[0].low"}`).
 */
export class TuneforgeError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number | null, code?: string, details?: any, cause?: unknown}} [info]
   */
  constructor(message, info = {}) {
    super(message, info.cause === undefined ? undefined : { cause: info.cause });
    this.name = new.target.name;
    /** @type {number | null} */
    this.status = info.status ?? null;
    /** @type {string} */
    this.code = info.code ?? "error";
    /** @type {any} */
    this.details = info.details ?? null;
  }
}

/** 400: the request was malformed (not JSON, wrong method or media type). */
export class BadRequest extends TuneforgeError {}
/** 401: credentials missing or wrong. */
export class Unauthorized extends TuneforgeError {}
/** 403: the credentials may not do this in this project. */
export class Forbidden extends TuneforgeError {}
/** 404: unknown study or trial. */
export class NotFound extends TuneforgeError {}
/** 409: state conflict (finished trial, paused/completed study, duplicate name). */
export class Conflict extends TuneforgeError {}
/** 413: request body too large. */
export class PayloadTooLarge extends TuneforgeError {}
/** 422: invalid spec or values; `message` names the field and the rule. */
export class InvalidSpec extends TuneforgeError {}
/** 429: rate limited (thrown once the retry budget is spent). */
export class RateLimited extends TuneforgeError {}
/** 5xx: the server failed (thrown once the retry budget is spent, for retryable requests). */
export class ServerError extends TuneforgeError {}
/** No reply: connection refused or reset, DNS failure, or timeout (`code` "timeout"). */
export class ConnectionFailed extends TuneforgeError {}

/** @type {Record<number, typeof TuneforgeError>} */
const ERROR_BY_STATUS = {
  400: BadRequest,
  401: Unauthorized,
  403: Forbidden,
  404: NotFound,
  409: Conflict,
  413: PayloadTooLarge,
  422: InvalidSpec,
  429: RateLimited,
};

/**
 * The error for an HTTP reply that is not 2xx.
 * @param {number} status
 * @param {string} text the reply body
 * @returns {TuneforgeError}
 */
function errorFromReply(status, text) {
  let code = `http_${status}`;
  let message = text.trim().slice(0, 500) || `HTTP ${status}`;
  let details = null;
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "object" && body.error !== null) {
      code = String(body.error.code ?? code);
      message = String(body.error.message ?? message);
      details = body.error.details ?? null;
    }
  } catch {
    // Not the API's error body (a proxy's page, say): keep the raw text.
  }
  const Kind =
    ERROR_BY_STATUS[status] ??
    (status >= 500 ? ServerError : status >= 400 ? BadRequest : TuneforgeError);
  return new Kind(message, { status, code, details });
}

// ---------------------------------------------------------------- helpers

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {string | undefined} name */
function envVar(name) {
  if (typeof process === "undefined" || !process.env || name === undefined) return undefined;
  const value = process.env[name];
  return value === undefined || value === "" ? undefined : value;
}

function defaultClientId() {
  const pid = typeof process !== "undefined" && process.pid ? process.pid : 0;
  const random = Math.random().toString(16).slice(2, 10).padEnd(8, "0");
  return `node-${pid}-${random}`;
}

/** @param {string} url */
function apiBase(url) {
  let base = url.trim().replace(/\/+$/, "");
  if (!/^https?:\/\//i.test(base)) {
    throw new TypeError(`tuneforge: url must start with http:// or https://, got ${JSON.stringify(url)}`);
  }
  if (!base.endsWith(API_PREFIX)) base += API_PREFIX;
  return base;
}

/**
 * Seconds of a `Retry-After` header as milliseconds, or null.
 * @param {string | null} header
 */
function retryAfterMs(header) {
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const when = Date.parse(header);
  return Number.isNaN(when) ? null : Math.max(0, when - Date.now());
}

/** @param {string | number} part */
const seg = (part) => encodeURIComponent(String(part));

/**
 * Checkpoint bytes as a Uint8Array (a Buffer is one already).
 * @param {unknown} data
 * @returns {Uint8Array}
 */
function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(
    "tuneforge: a checkpoint is bytes (Uint8Array, Buffer, ArrayBuffer or a typed array); " +
      "encode text with new TextEncoder().encode(...)",
  );
}

// ---------------------------------------------------------------- client

/** A connection to one tuneforge server. */
export class Client {
  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    /** The API root, e.g. `http://127.0.0.1:8000/api/v1`. */
    this.url = apiBase(options.url ?? envVar("TUNEFORGE_URL") ?? DEFAULT_URL);
    /** @private */
    this.apiKey = options.apiKey ?? envVar("TUNEFORGE_API_KEY");
    /** Sent with every suggest; see {@link ClientOptions.clientId}. */
    this.clientId = options.clientId ?? defaultClientId();
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxRetries = options.maxRetries ?? 3;
    this.retryBaseMs = options.retryBaseMs ?? 200;
    this.retryMaxMs = options.retryMaxMs ?? 5_000;
    this.reportDelayMs = options.reportDelayMs ?? 2_000;
    /** @private */
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof this.fetchImpl !== "function") {
      throw new TypeError("tuneforge: no global fetch; use Node.js 18 or newer, or pass options.fetch");
    }
    for (const [key, value] of Object.entries({
      timeoutMs: this.timeoutMs,
      maxRetries: this.maxRetries,
      retryBaseMs: this.retryBaseMs,
      retryMaxMs: this.retryMaxMs,
      reportDelayMs: this.reportDelayMs,
    })) {
      if (!Number.isFinite(value) || value < 0) {
        throw new TypeError(`tuneforge: ${key} must be a finite number >= 0, got ${value}`);
      }
    }
  }

  /**
   * Create a study. With `ifExists: "return"` an existing study with the same
   * name and an identical spec is returned instead of a 409 (and the request
   * becomes safe to retry).
   * @param {StudySpec} spec
   * @param {{ifExists?: "error" | "return"}} [options]
   * @returns {Promise<Study>}
   */
  async createStudy(spec, options = {}) {
    const ifExists = options.ifExists ?? "error";
    if (ifExists !== "error" && ifExists !== "return") {
      throw new TypeError(`tuneforge: ifExists must be "error" or "return", got ${JSON.stringify(ifExists)}`);
    }
    const data = await this.request("POST", "/studies", {
      query: { if_exists: ifExists === "return" ? "return" : undefined },
      body: spec,
      retry: ifExists === "return",
    });
    return new Study(this, data);
  }

  /**
   * Fetch a study by id (a number, or a string of digits) or by name (any
   * other string, or `{name}`). Throws NotFound when there is none.
   * @param {number | string | {id: number} | {name: string}} idOrName
   * @returns {Promise<Study>}
   */
  async getStudy(idOrName) {
    if (typeof idOrName === "object" && idOrName !== null) {
      if ("id" in idOrName) return this.getStudy(Number(idOrName.id));
      return this.studyByName(idOrName.name);
    }
    if (typeof idOrName === "number" || /^\d+$/.test(String(idOrName))) {
      const id = Number(idOrName);
      if (!Number.isSafeInteger(id)) throw new TypeError(`tuneforge: bad study id ${idOrName}`);
      return new Study(this, await this.request("GET", `/studies/${id}`, { retry: true }));
    }
    if (typeof idOrName !== "string") {
      throw new TypeError("tuneforge: getStudy takes a study id or name");
    }
    return this.studyByName(idOrName);
  }

  /**
   * @private
   * @param {string} name
   */
  async studyByName(name) {
    const [study] = await this.listStudies({ name });
    if (!study) {
      throw new NotFound(`name: no study named ${JSON.stringify(name)}`, {
        status: 404,
        code: "not_found",
        details: { field: "name" },
      });
    }
    return study;
  }

  /**
   * Every study (all pages), optionally filtered.
   * @param {{state?: "active" | "paused" | "completed", name?: string, pageSize?: number}} [filter]
   * @returns {Promise<Study[]>}
   */
  async listStudies(filter = {}) {
    /** @type {StudyData[]} */
    const rows = await this.paginate("/studies", "studies", {
      state: filter.state,
      name: filter.name,
      page_size: filter.pageSize,
    });
    return rows.map((row) => new Study(this, row));
  }

  /**
   * Every item of a paged list endpoint.
   * @param {string} path
   * @param {string} key
   * @param {Record<string, string|number|undefined|null>} query
   * @returns {Promise<any[]>}
   */
  async paginate(path, key, query) {
    const items = [];
    /** @type {string | null} */
    let token = null;
    do {
      const page = await this.request("GET", path, {
        query: { ...query, page_token: token ?? undefined },
        retry: true,
      });
      items.push(...page[key]);
      token = page.next_page_token ?? null;
    } while (token);
    return items;
  }

  /**
   * One REST call below `/api/v1`: JSON in, JSON out (or bytes, with `bytes` /
   * `raw`), errors as TuneforgeError subclasses. Public for endpoints this
   * client does not wrap.
   * @param {"GET" | "POST" | "PUT" | "PATCH" | "DELETE"} method
   * @param {string} path e.g. `/studies/3`
   * @param {RequestOptions} [options]
   * @returns {Promise<any>} the parsed reply (null for 204; a Uint8Array with `raw`)
   */
  async request(method, path, options = {}) {
    const url = new URL(this.url + path);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    /** @type {Record<string, string>} */
    const headers = { accept: "application/json", "user-agent": `tuneforge-js/${VERSION}` };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    /** @type {string | Uint8Array | undefined} */
    let payload;
    if (options.bytes !== undefined) {
      headers["content-type"] = "application/octet-stream";
      payload = options.bytes;
    } else if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(options.body);
    }
    if (options.raw) headers.accept = "application/octet-stream, application/json";
    const budget = options.retry ? this.maxRetries : 0;
    let uncertain = false; // an earlier attempt may have been applied
    for (let attempt = 0; ; attempt++) {
      /** @type {Response} */
      let reply;
      /** @type {string} */
      let text;
      /** @type {Uint8Array | null} */
      let bytes = null;
      try {
        reply = await this.fetchImpl(url, {
          method,
          headers,
          body: payload,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        if (options.raw) {
          bytes = new Uint8Array(await reply.arrayBuffer());
          text = reply.ok ? "" : new TextDecoder().decode(bytes);
        } else {
          text = await reply.text();
        }
      } catch (thrown) {
        // No complete reply: the request may or may not have been applied.
        const error = connectionError(thrown, method, url);
        if (attempt >= budget) throw error;
        uncertain = true;
        await sleep(this.backoffMs(attempt, null));
        continue;
      }
      if (reply.ok) return bytes ?? parseReply(text, method, url);
      const error = errorFromReply(reply.status, text);
      if (error instanceof Conflict && uncertain && options.onRetriedConflict) {
        return options.onRetriedConflict();
      }
      const retryable = reply.status === 429 || (options.retry && RETRY_STATUSES.has(reply.status));
      if (!retryable || attempt >= this.maxRetries) throw error;
      if (reply.status !== 429) uncertain = true;
      await sleep(this.backoffMs(attempt, retryAfterMs(reply.headers.get("retry-after"))));
    }
  }

  /**
   * Exponential backoff with jitter (half fixed, half random), at least the
   * server's Retry-After, at most `retryMaxMs`.
   * @private
   * @param {number} attempt
   * @param {number | null} retryAfter
   */
  backoffMs(attempt, retryAfter) {
    const backoff = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** attempt);
    const jittered = backoff / 2 + Math.random() * (backoff / 2);
    return Math.min(this.retryMaxMs, Math.max(jittered, retryAfter ?? 0));
  }
}

/**
 * @param {unknown} thrown
 * @param {string} method
 * @param {URL} url
 */
function connectionError(thrown, method, url) {
  const err = /** @type {{name?: string, message?: string, cause?: {code?: string, message?: string}}} */ (
    thrown ?? {}
  );
  if (err.name === "TimeoutError" || err.name === "AbortError") {
    return new ConnectionFailed(`${method} ${url.pathname}: no reply within the timeout`, {
      code: "timeout",
      cause: thrown,
    });
  }
  const why = err.cause?.code ?? err.cause?.message ?? err.message ?? String(thrown);
  return new ConnectionFailed(`${method} ${url.origin}${url.pathname}: ${why}`, {
    code: "connection_failed",
    details: err.cause?.code ? { errno: err.cause.code } : null,
    cause: thrown,
  });
}

/**
 * The JSON of a 2xx reply (null when empty, as for 204).
 * @param {string} text
 * @param {string} method
 * @param {URL} url
 */
function parseReply(text, method, url) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (thrown) {
    throw new ServerError(`${method} ${url.pathname}: the reply is not JSON (is ${url.origin} a tuneforge server?)`, {
      code: "bad_reply",
      details: { body: text.slice(0, 200) },
      cause: thrown,
    });
  }
}

// ---------------------------------------------------------------- study

/** A study on the server. `data` is the last Study object the server sent. */
export class Study {
  /**
   * @param {Client} client
   * @param {StudyData} data
   */
  constructor(client, data) {
    /** @readonly */
    this.client = client;
    /** @type {StudyData} */
    this.data = data;
  }

  /** @returns {number} */
  get id() {
    return this.data.id;
  }

  /** @returns {string} */
  get name() {
    return this.data.name;
  }

  /**
   * `active`, `paused` or `completed`, as of the last reply (suggest updates it).
   * @returns {string}
   */
  get state() {
    return this.data.state;
  }

  /** @private */
  get path() {
    return `/studies/${this.id}`;
  }

  /**
   * Re-read the study from the server.
   * @returns {Promise<Study>} this study
   */
  async refresh() {
    this.data = await this.client.request("GET", this.path, { retry: true });
    return this;
  }

  /**
   * PATCH the study: any of `state`, `max_trials`, `max_active_trials`,
   * `max_failed_trials`, `description`, `metadata`.
   * @param {Record<string, unknown>} changes
   * @returns {Promise<Study>} this study
   */
  async update(changes) {
    this.data = await this.client.request("PATCH", this.path, { body: changes });
    return this;
  }

  /** Delete the study and its trials. @returns {Promise<void>} */
  async delete() {
    await this.client.request("DELETE", this.path);
  }

  /**
   * Ask for up to `count` trials to evaluate. Uses the client's `clientId`, so
   * the server first returns this client's unfinished trials (a retried or
   * repeated call never leaks one). An empty array means nothing to do now:
   * look at `study.state` (`completed`: stop; `paused`: the study may be
   * resumed, ask again later; `active`: the `max_active_trials` cap is
   * reached, ask again later).
   * @param {number} [count]
   * @returns {Promise<Trial[]>}
   */
  async suggest(count = 1) {
    const reply = await this.client.request("POST", `${this.path}/trials/suggest`, {
      body: { count, client_id: this.client.clientId },
      retry: true,
    });
    this.data = { ...this.data, state: reply.study_state };
    return reply.trials.map((/** @type {TrialData} */ t) => new Trial(this, t));
  }

  /**
   * Add a trial by hand: queued for a worker (`requested`), or, with
   * `values`, an evaluation made elsewhere (`completed`).
   * @param {Record<string, any>} params
   * @param {{values?: Record<string, number>, metadata?: Record<string, unknown>}} [options]
   * @returns {Promise<Trial>}
   */
  async addTrial(params, options = {}) {
    /** @type {Record<string, unknown>} */
    const body = { params, state: options.values ? "completed" : "requested" };
    if (options.values) body.values = options.values;
    if (options.metadata) body.metadata = options.metadata;
    return new Trial(this, await this.client.request("POST", `${this.path}/trials`, { body }));
  }

  /**
   * One trial, with its measurements.
   * @param {number} number
   * @returns {Promise<Trial>}
   */
  async trial(number) {
    return new Trial(this, await this.client.request("GET", `${this.path}/trials/${seg(number)}`, { retry: true }));
  }

  /**
   * Every trial (all pages), in trial-number order.
   * @param {{state?: string, updatedAfter?: string | Date, pageSize?: number}} [filter]
   * @returns {Promise<Trial[]>}
   */
  async trials(filter = {}) {
    const after = filter.updatedAfter instanceof Date ? filter.updatedAfter.toISOString() : filter.updatedAfter;
    /** @type {TrialData[]} */
    const rows = await this.client.paginate(`${this.path}/trials`, "trials", {
      state: filter.state,
      updated_after: after,
      page_size: filter.pageSize,
    });
    return rows.map((row) => new Trial(this, row));
  }

  /**
   * The best trial (one element), the Pareto front (multi-objective), or [] while
   * nothing has completed.
   * @returns {Promise<Trial[]>}
   */
  async best() {
    const reply = await this.client.request("GET", `${this.path}/best`, { retry: true });
    return reply.trials.map((/** @type {TrialData} */ t) => new Trial(this, t));
  }
}

// ---------------------------------------------------------------- trial

/** A trial of a study. `data` is the last Trial object the server sent. */
export class Trial {
  /**
   * @param {Study} study
   * @param {TrialData} data
   */
  constructor(study, data) {
    /** @readonly */
    this.study = study;
    /** @type {TrialData} */
    this.data = data;
    /** Whether the last report or heartbeat said to stop. */
    this.shouldStop = false;
    /**
     * The last step reported (or the step a resumed trial goes on from): the
     * default step of {@link Trial.saveCheckpoint}.
     * @type {number | null}
     */
    this.lastStep = data.resume_from_step ?? null;
    /**
     * The instruction the last report brought back, already applied, or null: PBT's
     * `{type: "exploit", from_trial, params, step}` (params now hold the new values and
     * {@link Trial.loadCheckpoint} reads the donor's bytes until this trial saves again).
     * @type {Record<string, any> | null}
     */
    this.action = null;
    /** @private @type {number | null} the donor whose checkpoint loadCheckpoint reads */
    this.checkpointFrom = null;
    /** @private @type {Array<Record<string, unknown>>} reports held back, oldest first */
    this.held = [];
    /** @private when the first held report was held (ms since the epoch) */
    this.heldSince = 0;
    /**
     * @private Reports at steps below this may be held back: the last reply's
     * `next_decision_step` (Infinity: nothing more is decided; -Infinity: not known yet,
     * or a server that does not say).
     */
    this.holdBelow = -Infinity;
  }

  /** How many reports this trial holds back, not sent yet (see {@link Trial.report}). */
  get heldReports() {
    return this.held.length;
  }

  /** @returns {number} */
  get number() {
    return this.data.number;
  }

  /** @returns {Record<string, any>} */
  get params() {
    return this.data.params;
  }

  /** @returns {string} */
  get state() {
    return this.data.state;
  }

  /** @returns {Record<string, number> | null} */
  get values() {
    return this.data.values;
  }

  /**
   * Set when the server hands out a paused trial again (promoted): continue
   * training after this step, from {@link Trial.loadCheckpoint}; null for a fresh trial.
   * @returns {number | null}
   */
  get resumeFromStep() {
    return this.data.resume_from_step ?? null;
  }

  /** @private */
  get path() {
    return `/studies/${this.study.id}/trials/${this.number}`;
  }

  /** @private */
  get client() {
    return this.study.client;
  }

  /**
   * Report intermediate values at `step` (re-sending a step is a no-op).
   *
   * When the last reply said the study's rule cannot decide anything before a later
   * step (`next_decision_step`: ASHA's next rung, say), a report at a step below it is
   * held back and resolves to false without a request; the report at or past that step
   * sends the held ones with it (as `earlier`). Reports are held for at most the
   * client's `reportDelayMs` and a third of the lease; {@link Trial.complete},
   * {@link Trial.infeasible}, {@link Trial.fail}, {@link Trial.stop} and
   * {@link Trial.refresh} send them first.
   * A server that does not send `next_decision_step` gets every report at once.
   * @param {number} step
   * @param {Record<string, number>} values
   * @param {{elapsedSeconds?: number}} [options]
   * @returns {Promise<boolean>} true when the trial should stop: stop training
   *   and call {@link Trial.complete} with the last values.
   */
  async report(step, values, options = {}) {
    /** @type {Record<string, unknown>} */
    const point = { step, values };
    if (options.elapsedSeconds !== undefined) point.elapsed_seconds = options.elapsedSeconds;
    const now = Date.now();
    if (this.mayHold(step, now)) {
      if (this.held.length === 0) this.heldSince = now;
      this.held.push(point);
      this.lastStep = step;
      this.action = null; // a held report brings no instruction back
      return false;
    }
    const last = this.held.at(-1);
    if (last !== undefined && step <= /** @type {number} */ (last.step)) {
      await this.send(this.held); // they cannot be the earlier ones of a lower step
    }
    await this.send([...this.held, point]);
    return this.shouldStop;
  }

  /**
   * Whether a report at `step` may wait: the rule cannot decide there, nothing asked the
   * trial to stop, and the held ones are few, recent and at lower steps.
   * @private
   * @param {number} step
   * @param {number} now
   */
  mayHold(step, now) {
    const lease = this.study.data?.retries?.lease_seconds;
    const limit = Math.min(this.client.reportDelayMs, lease === undefined ? Infinity : (lease * 1000) / 3);
    if (!(limit > 0) || this.shouldStop || !(step < this.holdBelow)) return false;
    const last = this.held.at(-1);
    if (last === undefined) return true;
    return step > /** @type {number} */ (last.step) && now - this.heldSince < limit && this.held.length < MAX_HELD;
  }

  /**
   * Send one measurement request: the last of `points`, the others as its `earlier`.
   * @private
   * @param {Array<Record<string, unknown>>} points
   */
  async send(points) {
    const body = { ...points[points.length - 1] };
    if (points.length > 1) body.earlier = points.slice(0, -1);
    const reply = await this.client.request("POST", `${this.path}/measurements`, { body, retry: true });
    const step = /** @type {number} */ (body.step);
    this.held = this.held.filter((m) => /** @type {number} */ (m.step) > step);
    this.holdBelow = !("next_decision_step" in reply)
      ? -Infinity // an older server: send every report
      : reply.next_decision_step === null
        ? Infinity
        : reply.next_decision_step;
    this.data = { ...this.data, state: reply.trial_state };
    this.shouldStop = Boolean(reply.should_stop);
    this.lastStep = step;
    this.action = reply.action ?? null;
    if (this.action?.type === "exploit") {
      this.data = { ...this.data, params: this.action.params };
      this.checkpointFrom = this.action.from_trial;
    }
    return reply;
  }

  /**
   * Send the reports held back. With `dropIfRefused` (the trial ends or is read next) a
   * 409 drops them: a trial that stopped running can store no more, and the next call
   * reports its state.
   * @private
   * @param {boolean} dropIfRefused
   */
  async sendHeld(dropIfRefused) {
    if (this.held.length === 0) return;
    try {
      await this.send(this.held);
    } catch (error) {
      if (!(dropIfRefused && error instanceof Conflict)) throw error;
      this.held = [];
    }
  }

  /**
   * Store bytes as this trial's checkpoint, replacing the last one: the state
   * whoever resumes the trial (on any machine) trains on from. Save it when
   * `report` says stop, before `complete`; a trial can also save while it is
   * paused. Retried safely (PUT replaces).
   * @param {Uint8Array | ArrayBuffer | ArrayBufferView} data e.g. `new TextEncoder().encode(JSON.stringify(state))`
   * @param {number | null} [step] the step the state belongs to (default: the last reported)
   * @returns {Promise<{study_id: number, number: number, size_bytes: number, sha256: string, saved_at: string, step: number | null}>}
   */
  async saveCheckpoint(data, step) {
    const bytes = asBytes(data);
    const at = step ?? this.lastStep;
    this.checkpointFrom = null; // from now on loadCheckpoint reads this trial's own
    return this.client.request("PUT", `${this.path}/checkpoint`, {
      bytes,
      query: { step: at ?? undefined },
      retry: true,
    });
  }

  /**
   * The bytes last saved by {@link Trial.saveCheckpoint} for this trial (or for
   * trial `options.trial` of the study, e.g. a better one to copy), or null when
   * none was saved; after a PBT exploit ({@link Trial.action}) the donor's, until
   * this trial saves its own. A 404 for an unknown trial or study still throws NotFound.
   * @param {{trial?: number}} [options]
   * @returns {Promise<Uint8Array | null>}
   */
  async loadCheckpoint(options = {}) {
    const number = options.trial ?? this.checkpointFrom ?? this.number;
    const path = `/studies/${this.study.id}/trials/${seg(number)}/checkpoint`;
    try {
      return await this.client.request("GET", path, { raw: true, retry: true });
    } catch (error) {
      if (error instanceof NotFound && error.details?.field === "checkpoint") return null;
      throw error;
    }
  }

  /**
   * Extend the trial's lease during long work without a report.
   * @returns {Promise<boolean>} true when the trial should stop
   */
  async heartbeat() {
    const reply = await this.client.request("POST", `${this.path}/heartbeat`, { body: {}, retry: true });
    this.data = { ...this.data, state: reply.trial_state };
    this.shouldStop = Boolean(reply.should_stop);
    return this.shouldStop;
  }

  /**
   * Finish the trial with its final values. The server records it
   * `completed`, or, when the stopping rule had stopped it, `pruned` or
   * `paused` (asha, hyperband, bohb: a later suggest may hand it back with
   * `resumeFromStep` set).
   * @param {Record<string, number>} values
   * @returns {Promise<Trial>} this trial, updated
   */
  async complete(values) {
    return this.finish("complete", { values }, ["completed", "pruned", "paused"]);
  }

  /**
   * Finish the trial as infeasible: these parameters cannot be evaluated.
   * @param {string} [reason]
   * @returns {Promise<Trial>} this trial, updated
   */
  async infeasible(reason) {
    return this.finish("complete", { infeasible: true, reason: reason ?? null }, ["infeasible"]);
  }

  /**
   * Mark the trial failed. With `retry` (default true) the server queues a
   * copy with the same parameters while the study's retry budget lasts.
   * @param {string} [reason]
   * @param {{retry?: boolean}} [options]
   * @returns {Promise<Trial>} this trial, updated
   */
  async fail(reason, options = {}) {
    return this.finish("fail", { reason: reason ?? null, retry: options.retry ?? true }, ["failed"]);
  }

  /**
   * Ask the trial to stop (its worker sees should-stop on its next report).
   * @returns {Promise<Trial>} this trial, updated
   */
  async stop() {
    await this.sendHeld(false);
    this.holdBelow = -Infinity; // the next report goes out at once: its reply says stop
    this.data = await this.client.request("POST", `${this.path}/stop`, { body: {} });
    return this;
  }

  /**
   * Re-read the trial, with its measurements, after sending the reports it holds back.
   * @returns {Promise<Trial>} this trial
   */
  async refresh() {
    await this.sendHeld(true);
    this.data = await this.client.request("GET", this.path, { retry: true });
    return this;
  }

  /**
   * complete / fail, retried safely: if an attempt whose reply was lost did
   * finish the trial, the retry's 409 is answered by reading the trial back.
   * @private
   * @param {"complete" | "fail"} verb
   * @param {Record<string, unknown>} body
   * @param {string[]} expected states that mean the lost attempt took effect
   */
  async finish(verb, body, expected) {
    await this.sendHeld(true);
    this.data = await this.client.request("POST", `${this.path}/${verb}`, {
      body,
      retry: true,
      onRetriedConflict: async () => {
        const now = await this.client.request("GET", this.path, { retry: true });
        if (!expected.includes(now.state)) {
          throw new Conflict(`trial ${this.number} is already ${now.state}; a finished trial cannot change`, {
            status: 409,
            code: "conflict",
            details: { trial_state: now.state },
          });
        }
        return now;
      },
    });
    return this;
  }

  /** Whether the trial is in a state that never changes again. */
  get finished() {
    return FINISHED.has(this.state);
  }
}

export default Client;
