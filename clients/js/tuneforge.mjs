// @ts-check
/**
 * tuneforge client for JavaScript: a dependency-free ES module for Node.js 18+ (it uses
 * the global `fetch` and `AbortSignal.timeout`), with its siblings `errors.mjs` and
 * `handles.mjs` (copy the three files together).
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

import {
  connectionError,
  errorFromReply,
  parseReply,
  Conflict,
  NotFound,
  TuneforgeError,
} from "./errors.mjs";
import { Study } from "./handles.mjs";

export {
  TuneforgeError,
  BadRequest,
  Unauthorized,
  Forbidden,
  NotFound,
  Conflict,
  PayloadTooLarge,
  InvalidSpec,
  RateLimited,
  ServerError,
  ConnectionFailed,
} from "./errors.mjs";
export { Study, Trial } from "./handles.mjs";

export const VERSION = "0.1.0";

const DEFAULT_URL = "http://127.0.0.1:8000";
const API_PREFIX = "/api/v1";
const RETRY_STATUSES = new Set([429, 502, 503, 504]);

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

export default Client;
