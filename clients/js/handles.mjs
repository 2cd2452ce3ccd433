// @ts-check
/**
 * The study and trial handles of the tuneforge client for JavaScript (`tuneforge.mjs`
 * exports them; a `Client` makes them).
 *
 * @module tuneforge/handles
 */

import { Conflict, NotFound } from "./errors.mjs";

/** @typedef {import("./tuneforge.mjs").Client} Client */
/** @typedef {import("./tuneforge.mjs").StudyData} StudyData */
/** @typedef {import("./tuneforge.mjs").TrialData} TrialData */

/** Trial states after which the trial never changes again. */
const FINISHED = new Set(["completed", "pruned", "infeasible", "failed"]);
/** Most reports a trial holds back before it sends them (a report carries up to 1000). */
const MAX_HELD = 500;

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
