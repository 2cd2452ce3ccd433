// @ts-check
/**
 * The errors of the tuneforge client for JavaScript (`tuneforge.mjs` exports the classes),
 * and how a reply that is not 2xx, or a request that got no reply, becomes one.
 *
 * @module tuneforge/errors
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
export function errorFromReply(status, text) {
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

// ---------------------------------------------------------------- replies

/**
 * @param {unknown} thrown
 * @param {string} method
 * @param {URL} url
 */
export function connectionError(thrown, method, url) {
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
export function parseReply(text, method, url) {
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
