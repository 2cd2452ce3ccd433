// Tests of clients/js/tuneforge.mjs against a live tuneforge server.
//
//   TUNEFORGE_URL=http://127.0.0.1:8000 node --test clients/js/test/
//
// Every study gets a fresh name, so the tests can run again on the same server.
// tests/clients/test_js_and_curl.py runs this file against a fresh SQLite server.

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { before, describe, test } from "node:test";

import {
  BadRequest,
  Client,
  Conflict,
  ConnectionFailed,
  Forbidden,
  InvalidSpec,
  NotFound,
  PayloadTooLarge,
  RateLimited,
  ServerError,
  Study,
  Trial,
  TuneforgeError,
  Unauthorized,
} from "../tuneforge.mjs";

const URL_ = process.env.TUNEFORGE_URL;
if (!URL_) {
  throw new Error("set TUNEFORGE_URL to a running tuneforge server (e.g. http://127.0.0.1:8000)");
}

const RUN = `${Date.now().toString(36)}-${Math.random().toString(16).slice(2, 6)}`;
let serial = 0;
const uniqueName = (what) => `js-test-${what}-${RUN}-${serial++}`;

/** A small study spec: one float, one categorical, one metric to maximize. */
function spec(what, extra = {}) {
  return {
    name: uniqueName(what),
    parameters: [
      { name: "lr", type: "float", low: 1e-4, high: 0.1, scale: "log" },
      { name: "opt", type: "categorical", values: ["adam", "sgd"] },
    ],
    metrics: [{ name: "accuracy", goal: "maximize" }],
    max_trials: 10,
    ...extra,
  };
}

/** A client with fast retries, so failure paths take milliseconds. */
const fastClient = (options = {}) => new Client({ retryBaseMs: 5, retryMaxMs: 50, ...options });

/** The port of a socket that was just closed: connecting to it is refused. */
async function closedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A JSON Response as a server would send it. */
function reply(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

describe("Client", () => {
  test("reads TUNEFORGE_URL and accepts the URL with or without /api/v1", () => {
    assert.equal(new Client().url, `${URL_.replace(/\/+$/, "")}/api/v1`);
    assert.equal(new Client({ url: "http://h:1/" }).url, "http://h:1/api/v1");
    assert.equal(new Client({ url: "http://h:1/api/v1/" }).url, "http://h:1/api/v1");
    assert.throws(() => new Client({ url: "h:1" }), TypeError);
    assert.throws(() => new Client({ timeoutMs: Number.POSITIVE_INFINITY }), TypeError);
  });

  test("has a per-client clientId node-<pid>-<random>", () => {
    const a = new Client();
    const b = new Client();
    assert.match(a.clientId, new RegExp(`^node-${process.pid}-[0-9a-f]{8}$`));
    assert.notEqual(a.clientId, b.clientId);
    assert.equal(new Client({ clientId: "host-7:worker-2" }).clientId, "host-7:worker-2");
  });

  test("sends the API key as a Bearer token, and none without one", async () => {
    const seen = [];
    const spy = async (url, init) => {
      seen.push(init.headers);
      return fetch(url, init);
    };
    await new Client({ apiKey: "s3cret", fetch: spy }).listStudies({ pageSize: 1, name: "nope" });
    await new Client({ apiKey: "", fetch: spy }).listStudies({ pageSize: 1, name: "nope" });
    assert.equal(seen[0].authorization, "Bearer s3cret");
    assert.equal(seen[1].authorization, undefined);
  });
});

describe("studies", () => {
  const client = new Client();

  test("createStudy returns a Study with id, name and the server's fields", async () => {
    const s = spec("create");
    const study = await client.createStudy(s);
    assert.ok(study instanceof Study);
    assert.equal(typeof study.id, "number");
    assert.equal(study.name, s.name);
    assert.equal(study.state, "active");
    assert.equal(study.data.max_trials, 10);
    assert.equal(study.data.best_trial, null);
  });

  test("createStudy with the same name: 409 Conflict, unless ifExists return", async () => {
    const s = spec("dup");
    const first = await client.createStudy(s);
    await assert.rejects(client.createStudy(s), (e) => {
      assert.ok(e instanceof Conflict && e instanceof TuneforgeError);
      assert.equal(e.status, 409);
      assert.equal(e.code, "conflict");
      assert.match(e.message, /already exists/);
      assert.equal(e.details.study_id, first.id);
      return true;
    });
    const again = await client.createStudy(s, { ifExists: "return" });
    assert.equal(again.id, first.id);
    await assert.rejects(client.createStudy({ ...s, max_trials: 11 }, { ifExists: "return" }), Conflict);
    await assert.rejects(client.createStudy(s, { ifExists: "replace" }), TypeError);
  });

  test("an invalid spec is a 422 InvalidSpec naming the field", async () => {
    const s = spec("bad");
    s.parameters[0].low = 0;
    await assert.rejects(client.createStudy(s), (e) => {
      assert.ok(e instanceof InvalidSpec);
      assert.equal(e.status, 422);
      assert.equal(e.code, "invalid_spec");
      assert.match(e.message, /^parameters\[0\]\.low: /);
      assert.equal(e.details.field, "parameters[0].low");
      return true;
    });
    await assert.rejects(client.createStudy({ ...spec("bad2"), algorithm: "no-such-algorithm" }), (e) => {
      assert.ok(e instanceof InvalidSpec);
      assert.match(e.message, /^algorithm/);
      return true;
    });
  });

  test("getStudy by id, by digit string, by name and by {name}", async () => {
    const created = await client.createStudy(spec("get"));
    for (const key of [created.id, String(created.id), created.name, { name: created.name }, { id: created.id }]) {
      const got = await client.getStudy(key);
      assert.ok(got instanceof Study);
      assert.equal(got.id, created.id);
      assert.equal(got.name, created.name);
    }
  });

  test("getStudy of an unknown study is a 404 NotFound", async () => {
    await assert.rejects(client.getStudy(987654321), (e) => {
      assert.ok(e instanceof NotFound && e instanceof TuneforgeError);
      assert.equal(e.status, 404);
      assert.equal(e.code, "not_found");
      assert.match(e.message, /987654321/);
      return true;
    });
    await assert.rejects(client.getStudy(uniqueName("missing")), (e) => {
      assert.ok(e instanceof NotFound);
      assert.equal(e.details.field, "name");
      return true;
    });
  });

  test("listStudies returns every page, and filters by name and state", async () => {
    const created = [];
    for (let i = 0; i < 3; i++) created.push(await client.createStudy(spec("list")));
    const all = await client.listStudies({ pageSize: 1 });
    const ids = all.map((s) => s.id);
    for (const s of created) assert.ok(ids.includes(s.id), `study ${s.id} missing from listStudies`);
    assert.equal(new Set(ids).size, ids.length, "a study appears on two pages");
    assert.ok(all.every((s) => s instanceof Study));
    const [byName] = await client.listStudies({ name: created[1].name });
    assert.equal(byName.id, created[1].id);
    await created[2].update({ state: "paused" });
    const paused = (await client.listStudies({ state: "paused" })).map((s) => s.id);
    assert.ok(paused.includes(created[2].id));
    assert.ok(!paused.includes(created[0].id));
  });

  test("update, refresh and delete", async () => {
    const study = await client.createStudy(spec("update"));
    await study.update({ max_trials: 3, description: "three only" });
    assert.equal(study.data.max_trials, 3);
    assert.equal(study.data.description, "three only");
    await study.update({ state: "paused" });
    assert.equal(study.state, "paused");
    assert.deepEqual(await study.suggest(), []);
    // docs/api.md: suggest on a paused study answers study_state "paused" (it may resume)
    assert.equal(study.state, "paused");
    await study.refresh();
    assert.equal(study.state, "paused");
    await study.update({ state: "active" });
    await study.refresh();
    assert.equal(study.state, "active");
    await study.delete();
    await assert.rejects(client.getStudy(study.id), NotFound);
    await assert.rejects(study.refresh(), NotFound);
  });
});

describe("trials", () => {
  const client = new Client();
  /** @type {Study} */
  let study;
  before(async () => {
    study = await client.createStudy(spec("trials", { max_trials: 6 }));
  });

  test("suggest returns Trial objects with number and params", async () => {
    const trials = await study.suggest();
    assert.equal(trials.length, 1);
    const [trial] = trials;
    assert.ok(trial instanceof Trial);
    assert.equal(trial.number, 0);
    assert.equal(trial.state, "active");
    assert.ok(trial.params.lr >= 1e-4 && trial.params.lr <= 0.1);
    assert.ok(["adam", "sgd"].includes(trial.params.opt));
    assert.equal(trial.data.client_id, client.clientId);
  });

  test("suggest is idempotent per clientId; another client gets new trials", async () => {
    const again = await study.suggest();
    assert.deepEqual(
      again.map((t) => t.number),
      [0],
    );
    const other = await new Client().getStudy(study.id);
    const [theirs] = await other.suggest();
    assert.notEqual(theirs.number, 0);
    await theirs.complete({ accuracy: 0.5 });
  });

  test("report answers should-stop false; re-sending a step is a no-op", async () => {
    const [trial] = await study.suggest();
    assert.equal(trial.number, 0);
    assert.equal(await trial.report(1, { accuracy: 0.7 }), false);
    assert.equal(await trial.report(1, { accuracy: 0.7 }), false);
    assert.equal(await trial.report(2, { accuracy: 0.8 }, { elapsedSeconds: 1.5 }), false);
    assert.equal(trial.shouldStop, false);
    assert.equal(await trial.heartbeat(), false);
    await trial.refresh();
    assert.deepEqual(
      trial.data.measurements.map((m) => [m.step, m.values.accuracy, m.elapsed_seconds]),
      [
        [1, 0.7, null],
        [2, 0.8, 1.5],
      ],
    );
  });

  test("a non-finite value is a 422 InvalidSpec naming the metric", async () => {
    const [trial] = await study.suggest();
    await assert.rejects(trial.report(3, { accuracy: Number.NaN }), (e) => {
      // JSON.stringify turns NaN into null: rejected all the same.
      assert.ok(e instanceof InvalidSpec);
      assert.match(e.message, /values\.accuracy/);
      return true;
    });
    await assert.rejects(trial.report(3, { nope: 1 }), InvalidSpec);
  });

  test("complete finishes the trial; any later write is a 409 Conflict", async () => {
    const [trial] = await study.suggest();
    const done = await trial.complete({ accuracy: 0.9 });
    assert.equal(done, trial);
    assert.equal(trial.state, "completed");
    assert.deepEqual(trial.values, { accuracy: 0.9 });
    assert.ok(trial.finished);
    for (const write of [
      () => trial.complete({ accuracy: 0.1 }),
      () => trial.report(9, { accuracy: 0.1 }),
      () => trial.heartbeat(),
      () => trial.fail("late"),
      () => trial.infeasible("late"),
    ]) {
      await assert.rejects(write(), (e) => {
        assert.ok(e instanceof Conflict);
        assert.equal(e.status, 409);
        assert.equal(e.code, "conflict");
        assert.match(e.message, /completed/);
        return true;
      });
    }
  });

  test("infeasible records the reason", async () => {
    const [trial] = await study.suggest();
    await trial.infeasible("OOM at this width");
    assert.equal(trial.state, "infeasible");
    assert.equal(trial.data.reason, "OOM at this width");
  });

  test("fail with retry queues a copy with the same params; without retry it does not", async () => {
    const [trial] = await study.suggest();
    await trial.fail("node lost", { retry: true });
    assert.equal(trial.state, "failed");
    const [copy] = await study.trials({ state: "requested" });
    assert.equal(copy.data.retry_of, trial.number);
    assert.deepEqual(copy.params, trial.params);
    const [next] = await study.suggest();
    assert.equal(next.number, copy.number, "suggest hands out the queued retry first");
    await next.fail("again", { retry: false });
    assert.equal((await study.trials({ state: "requested" })).length, 0);
  });

  test("trial(number), stop, and an unknown trial is NotFound", async () => {
    const [trial] = await study.suggest();
    const read = await study.trial(trial.number);
    assert.deepEqual(read.params, trial.params);
    await trial.stop();
    assert.equal(trial.state, "stopping");
    assert.equal(await trial.heartbeat(), true);
    await trial.complete({ accuracy: 0.3 });
    assert.equal(trial.state, "completed");
    await assert.rejects(study.trial(99999), NotFound);
  });

  test("addTrial queues params or records an outside evaluation", async () => {
    const outside = await study.addTrial({ lr: 0.01, opt: "sgd" }, { values: { accuracy: 0.95 } });
    assert.equal(outside.state, "completed");
    assert.deepEqual(outside.values, { accuracy: 0.95 });
  });

  test("best returns the best trial as an array", async () => {
    const best = await study.best();
    assert.equal(best.length, 1);
    assert.ok(best[0] instanceof Trial);
    assert.deepEqual(best[0].values, { accuracy: 0.95 });
  });

  test("trials returns every page, filtered by state", async () => {
    const all = await study.trials({ pageSize: 2 });
    assert.deepEqual(
      all.map((t) => t.number),
      [...Array(all.length).keys()],
    );
    const completed = await study.trials({ state: "completed", pageSize: 1 });
    assert.ok(completed.length >= 3);
    assert.ok(completed.every((t) => t.state === "completed"));
    const failed = await study.trials({ state: "failed" });
    assert.equal(failed.length, 2);
    assert.ok((await study.trials({ updatedAfter: new Date(Date.now() + 3600_000) })).length === 0);
    await assert.rejects(study.trials({ state: "bogus" }), InvalidSpec);
  });

  test("when the budget is spent suggest returns [] and the study is completed", async () => {
    for (;;) {
      const trials = await study.suggest(2);
      if (trials.length === 0) break;
      for (const t of trials) await t.complete({ accuracy: 0.1 });
    }
    assert.equal(study.state, "completed");
    await study.refresh();
    assert.equal(study.data.completion_reason, "max_trials");
    assert.equal(study.data.best_trial.values.accuracy, 0.95);
  });
});

describe("early stopping", () => {
  test("report answers should-stop true for a trial worse than the median", async () => {
    const client = new Client();
    const study = await client.createStudy(
      spec("median", { early_stopping: { rule: "median", n_startup_trials: 1, min_peers: 1 } }),
    );
    const [good] = await study.suggest();
    assert.equal(await good.report(1, { accuracy: 0.9 }), false);
    await good.complete({ accuracy: 0.9 });
    const [bad] = await study.suggest();
    assert.equal(await bad.report(1, { accuracy: 0.1 }), true);
    assert.equal(bad.shouldStop, true);
    assert.equal(bad.state, "stopping");
    await bad.complete({ accuracy: 0.1 });
    assert.equal(bad.state, "pruned");
  });
});

/** A client whose measurement requests are noted: `[client, bodies]`; `older` drops
 * next_decision_step from the replies (what a server from before it answers). */
function notingClient(options = {}, older = false) {
  const bodies = [];
  const noting = async (url, init) => {
    const measure = String(url).endsWith("/measurements");
    if (measure) bodies.push(JSON.parse(init.body));
    const answer = await fetch(url, init);
    if (!measure || !older || !answer.ok) return answer;
    const body = await answer.json();
    delete body.next_decision_step;
    return reply(answer.status, body);
  };
  return [new Client({ fetch: noting, ...options }), bodies];
}

const rungSpec = (what) =>
  spec(what, {
    fidelity: { name: "epochs", min: 1, max: 27 },
    early_stopping: { rule: "asha", reduction_factor: 3, keep_leader: true },
  });

describe("held-back reports", () => {
  test("an asha trial sends one report per rung, the rest with complete", async () => {
    const [client, bodies] = notingClient({ reportDelayMs: 60_000 });
    const study = await client.createStudy(rungSpec("held"));
    const [trial] = await study.suggest();
    for (let step = 1; step < 27; step++) {
      assert.equal(await trial.report(step, { accuracy: step / 100 }), false);
    }
    assert.deepEqual(
      bodies.map((b) => b.step),
      [1, 3, 9],
    );
    assert.deepEqual(
      bodies.map((b) => (b.earlier ?? []).map((m) => m.step)),
      [[], [2], [4, 5, 6, 7, 8]],
    );
    assert.equal(trial.heldReports, 26 - 9);
    await trial.complete({ accuracy: 0.3 });
    assert.deepEqual(
      bodies.map((b) => b.step),
      [1, 3, 9, 26],
    );
    assert.equal(trial.heldReports, 0);
    await trial.refresh();
    assert.deepEqual(
      trial.data.measurements.map((m) => m.step),
      Array.from({ length: 26 }, (_, i) => i + 1),
    );
    assert.equal(trial.state, "completed");
  });

  test("reportDelayMs 0, and a server without next_decision_step, get every report", async () => {
    for (const [options, older] of [
      [{ reportDelayMs: 0 }, false],
      [{}, true],
    ]) {
      const [client, bodies] = notingClient(options, older);
      const study = await client.createStudy(rungSpec("every"));
      const [trial] = await study.suggest();
      for (let step = 1; step <= 5; step++) await trial.report(step, { accuracy: 0.5 });
      assert.deepEqual(
        bodies.map((b) => [b.step, b.earlier]),
        [1, 2, 3, 4, 5].map((s) => [s, undefined]),
      );
      await trial.complete({ accuracy: 0.5 });
    }
  });

  test("held reports wait at most reportDelayMs; fail and stop send them first", async () => {
    const [client, bodies] = notingClient({ reportDelayMs: 200 });
    const study = await client.createStudy(spec("delay"));
    const [trial] = await study.suggest(); // rule none: nothing is ever decided
    await trial.report(1, { accuracy: 0.1 });
    await trial.report(2, { accuracy: 0.2 });
    assert.deepEqual(
      bodies.map((b) => b.step),
      [1],
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    await trial.report(3, { accuracy: 0.3 });
    assert.deepEqual(
      bodies.map((b) => [b.step, (b.earlier ?? []).map((m) => m.step)]),
      [
        [1, []],
        [3, [2]],
      ],
    );
    await trial.report(4, { accuracy: 0.4 });
    await trial.stop();
    assert.equal(await trial.report(5, { accuracy: 0.5 }), true); // sent at once: says stop
    await trial.fail("done", { retry: false });
    await trial.refresh();
    assert.deepEqual(
      trial.data.measurements.map((m) => m.step),
      [1, 2, 3, 4, 5],
    );
  });
});

describe("checkpoints", () => {
  const client = new Client();
  /** An asha study: epochs 1 to 9, rungs at 1 and 3. */
  const ashaSpec = (what) =>
    spec(what, {
      max_trials: 3,
      fidelity: { name: "epochs", min: 1, max: 9 },
      early_stopping: { rule: "asha", reduction_factor: 3 },
    });

  test("saveCheckpoint stores bytes, loadCheckpoint returns them, null when none", async () => {
    const study = await client.createStudy(spec("ckpt"));
    const [first, second] = await study.suggest(2);
    assert.equal(first.resumeFromStep, null);
    assert.equal(await first.loadCheckpoint(), null);
    await first.report(4, { accuracy: 0.5 });
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const info = await first.saveCheckpoint(bytes);
    assert.equal(info.step, 4, "the last reported step by default");
    assert.equal(info.size_bytes, 5);
    assert.match(info.sha256, /^[0-9a-f]{64}$/);
    const loaded = await first.loadCheckpoint();
    assert.ok(loaded instanceof Uint8Array);
    assert.deepEqual([...loaded], [...bytes]);
    // a Buffer, an ArrayBuffer and a typed array are bytes too; another trial's can be read
    await second.saveCheckpoint(Buffer.from("buffer"), 2);
    assert.equal(new TextDecoder().decode(await first.loadCheckpoint({ trial: second.number })), "buffer");
    await second.saveCheckpoint(new Uint16Array([1, 2]).buffer, 3);
    assert.equal((await second.loadCheckpoint()).length, 4);
    assert.equal((await second.saveCheckpoint(new Float64Array([0.5]))).size_bytes, 8);
    await assert.rejects(second.saveCheckpoint("text"), TypeError);
    await first.complete({ accuracy: 0.5 });
    assert.deepEqual([...(await first.loadCheckpoint())], [...bytes], "readable after the end");
  });

  test("a pbt exploit is applied: params updated, loadCheckpoint reads the donor's", async () => {
    const study = await client.createStudy(
      spec("pbt", { early_stopping: { rule: "pbt", population: 4, interval: 2, quantile: 0.25 } }),
    );
    const members = await study.suggest(4);
    const enc = (n) => new TextEncoder().encode(`model-${n}`);
    for (const [i, t] of members.entries()) {
      await t.report(1, { accuracy: 0.1 * (i + 1) });
      await t.saveCheckpoint(enc(t.number));
    }
    for (const t of members.slice(1)) {
      assert.equal(await t.report(2, { accuracy: 0.1 * (t.number + 1) }), false);
      assert.equal(t.action, null);
    }
    const worst = members[0];
    assert.equal(await worst.report(2, { accuracy: 0.01 }), false);
    const best = members[3];
    assert.equal(worst.action.type, "exploit");
    assert.equal(worst.action.from_trial, best.number);
    assert.deepEqual(worst.params, worst.action.params);
    assert.equal(new TextDecoder().decode(await worst.loadCheckpoint()), `model-${best.number}`);
    await worst.saveCheckpoint(enc("own"));
    assert.equal(new TextDecoder().decode(await worst.loadCheckpoint()), "model-own");
    const again = await study.trial(worst.number);
    assert.equal(again.data.metadata.pbt_history[0].from_trial, best.number);
  });

  test("a finished trial refuses a checkpoint; an unknown trial is NotFound, not null", async () => {
    const study = await client.createStudy(spec("ckpt-errors"));
    const [trial] = await study.suggest();
    await trial.complete({ accuracy: 0.1 });
    await assert.rejects(trial.saveCheckpoint(new Uint8Array([1])), (e) => {
      assert.ok(e instanceof Conflict);
      assert.equal(e.status, 409);
      return true;
    });
    await assert.rejects(trial.loadCheckpoint({ trial: 999 }), (e) => {
      assert.ok(e instanceof NotFound);
      assert.notEqual(e.details?.field, "checkpoint");
      return true;
    });
  });

  test("a checkpoint PUT is retried on 503 with the same bytes", async () => {
    const study = await client.createStudy(spec("ckpt-retry"));
    const [plain] = await study.suggest();
    let calls = 0;
    const bodies = [];
    const flaky = fastClient({
      clientId: client.clientId,
      fetch: async (url, init) => {
        if (init.method === "PUT") {
          calls++;
          bodies.push(init.headers["content-type"]);
          if (calls === 1) return reply(503, { error: { code: "temporary", message: "busy", details: null } });
        }
        return fetch(url, init);
      },
    });
    const [trial] = await (await flaky.getStudy(study.id)).suggest();
    assert.equal(trial.number, plain.number);
    await trial.saveCheckpoint(new Uint8Array([7, 7]), 1);
    assert.equal(calls, 2);
    assert.deepEqual(bodies, ["application/octet-stream", "application/octet-stream"]);
    assert.deepEqual([...(await plain.loadCheckpoint())], [7, 7]);
  });

  test("a paused trial comes back with resumeFromStep and its checkpoint", async () => {
    const study = await client.createStudy(ashaSpec("cycle"));
    const trials = await study.suggest(3);
    // worst first: the first two pause at rung 1 (outside the top third), the best goes on
    trials.sort((a, b) => a.params.lr - b.params.lr);
    const paused = [];
    for (const [i, trial] of trials.entries()) {
      if (await trial.report(1, { accuracy: i / 10 })) {
        await trial.saveCheckpoint(new TextEncoder().encode(JSON.stringify({ epoch: 1, i })));
        paused.push(trial.number);
      }
      await trial.complete({ accuracy: i / 10 });
      assert.equal(trial.state, paused.includes(trial.number) ? "paused" : "completed");
      assert.equal(trial.finished, !paused.includes(trial.number), "a paused trial is not finished");
    }
    assert.equal(paused.length, 2);
    // the budget is spent and nothing runs: the best paused trial is promoted
    const [resumed] = await study.suggest();
    assert.equal(resumed.number, paused[1]);
    assert.equal(resumed.resumeFromStep, 1);
    assert.equal(resumed.lastStep, 1);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(await resumed.loadCheckpoint())), { epoch: 1, i: 1 });
    assert.equal(await resumed.report(2, { accuracy: 0.5 }), false);
    assert.equal(await resumed.report(3, { accuracy: 0.5 }), true, "alone at rung 3: paused");
    await resumed.saveCheckpoint(new TextEncoder().encode(JSON.stringify({ epoch: 3, i: 1 })));
    await resumed.complete({ accuracy: 0.5 });
    assert.equal(resumed.state, "paused");
    // still nobody trained to the end: the best paused trial of the highest rung comes back
    const [again] = await study.suggest();
    assert.equal(again.number, resumed.number);
    assert.equal(again.resumeFromStep, 3);
    assert.equal(JSON.parse(new TextDecoder().decode(await again.loadCheckpoint())).epoch, 3);
    for (let epoch = 4; epoch <= 9; epoch++) assert.equal(await again.report(epoch, { accuracy: 0.6 }), false);
    await again.complete({ accuracy: 0.6 });
    assert.equal(again.state, "completed");
    // one trial trained to the end: the paused one left is pruned and the study ends
    assert.deepEqual(await study.suggest(), []);
    assert.equal(study.state, "completed");
    assert.deepEqual(
      (await study.trials()).map((t) => t.state).sort(),
      ["completed", "completed", "pruned"],
    );
  });
});

describe("retries and errors", () => {
  test("a closed port is ConnectionFailed after the retry budget", async () => {
    const port = await closedPort();
    const client = fastClient({ url: `http://127.0.0.1:${port}`, maxRetries: 2 });
    let calls = 0;
    const counting = new Client({
      url: `http://127.0.0.1:${port}`,
      maxRetries: 2,
      retryBaseMs: 1,
      fetch: async (url, init) => {
        calls++;
        return fetch(url, init);
      },
    });
    await assert.rejects(client.listStudies(), (e) => {
      assert.ok(e instanceof ConnectionFailed && e instanceof TuneforgeError);
      assert.equal(e.status, null);
      assert.equal(e.code, "connection_failed");
      assert.match(e.message, /ECONNREFUSED/);
      return true;
    });
    await assert.rejects(counting.getStudy(1), ConnectionFailed);
    assert.equal(calls, 3, "one attempt and two retries");
    calls = 0;
    await assert.rejects(counting.createStudy(spec("noretry")), ConnectionFailed);
    assert.equal(calls, 1, "a plain create is never repeated");
  });

  test("a timeout is ConnectionFailed with code timeout", async () => {
    const hang = (_url, init) =>
      new Promise((_resolve, reject) => {
        init.signal.addEventListener("abort", () => reject(init.signal.reason));
      });
    const client = fastClient({ timeoutMs: 20, maxRetries: 1, fetch: hang });
    // AbortSignal.timeout's timer does not keep the event loop alive (a real
    // request's socket does): hold it open while the fake request hangs.
    const keepAlive = setTimeout(() => {}, 10_000);
    try {
      await assert.rejects(client.getStudy(1), (e) => {
        assert.ok(e instanceof ConnectionFailed);
        assert.equal(e.code, "timeout");
        assert.match(e.message, /no reply within/);
        return true;
      });
    } finally {
      clearTimeout(keepAlive);
    }
  });

  test("a lost suggest reply is retried with the same clientId and leaks no trial", async () => {
    const client = new Client();
    const study = await client.createStudy(spec("lost-suggest"));
    let lose = 1;
    const flaky = new Client({
      clientId: `flaky-${RUN}`,
      retryBaseMs: 1,
      fetch: async (url, init) => {
        const r = await fetch(url, init); // the server applies the request ...
        if (String(url).endsWith("/suggest") && lose-- > 0) throw new TypeError("fetch failed"); // ... the reply is lost
        return r;
      },
    });
    const mine = await flaky.getStudy(study.id);
    const [trial] = await mine.suggest();
    assert.equal(trial.number, 0);
    await study.refresh();
    assert.equal(study.data.trial_counts.active, 1, "the retry handed out the same trial");
  });

  test("a lost complete reply is reconciled: the retry's 409 reads the trial back", async () => {
    const client = new Client();
    const study = await client.createStudy(spec("lost-complete"));
    let lose = 1;
    const flaky = new Client({
      retryBaseMs: 1,
      fetch: async (url, init) => {
        const r = await fetch(url, init);
        if (String(url).endsWith("/complete") && lose-- > 0) throw new TypeError("fetch failed");
        return r;
      },
    });
    const [trial] = await (await flaky.getStudy(study.id)).suggest();
    await trial.complete({ accuracy: 0.77 });
    assert.equal(trial.state, "completed");
    assert.deepEqual(trial.values, { accuracy: 0.77 });
  });

  test("429/502/503/504 are retried for safe requests, honouring the budget", async () => {
    for (const status of [429, 502, 503, 504]) {
      let calls = 0;
      const client = fastClient({
        fetch: async (url, init) => {
          calls++;
          if (calls < 3) return reply(status, { error: { code: "busy", message: "try later", details: null } }, { "retry-after": "0" });
          return fetch(url, init);
        },
      });
      const studies = await client.listStudies({ pageSize: 1, name: "nope" });
      assert.deepEqual(studies, []);
      assert.equal(calls, 3, `status ${status}`);
    }
    const client = fastClient({ maxRetries: 1, fetch: async () => reply(503, { error: { code: "temporary", message: "db busy", details: null } }) });
    await assert.rejects(client.listStudies(), (e) => {
      assert.ok(e instanceof ServerError);
      assert.equal(e.status, 503);
      assert.equal(e.code, "temporary");
      assert.equal(e.message, "db busy");
      return true;
    });
  });

  test("a non-idempotent request is not repeated on 503 but is on 429", async () => {
    for (const [status, expected] of [
      [503, 1],
      [429, 2],
    ]) {
      let calls = 0;
      const client = fastClient({
        maxRetries: 1,
        fetch: async () => {
          calls++;
          return reply(status, { error: { code: "x", message: "no", details: null } });
        },
      });
      await assert.rejects(client.createStudy(spec("no-repeat")), TuneforgeError);
      assert.equal(calls, expected, `status ${status}`);
    }
  });

  test("each HTTP status maps to its error class, with the API's code, message and details", async () => {
    const cases = [
      [400, BadRequest, "bad_request"],
      [401, Unauthorized, "unauthorized"],
      [403, Forbidden, "forbidden"],
      [404, NotFound, "not_found"],
      [409, Conflict, "conflict"],
      [413, PayloadTooLarge, "payload_too_large"],
      [422, InvalidSpec, "invalid_spec"],
      [429, RateLimited, "rate_limited"],
      [500, ServerError, "internal"],
    ];
    for (const [status, Kind, code] of cases) {
      const client = fastClient({
        maxRetries: 0,
        fetch: async () => reply(status, { error: { code, message: `m${status}`, details: { field: "f" } } }),
      });
      await assert.rejects(client.getStudy(1), (e) => {
        assert.ok(e instanceof Kind, `${status} -> ${e.name}`);
        assert.ok(e instanceof TuneforgeError);
        assert.equal(e.name, Kind.name);
        assert.deepEqual([e.status, e.code, e.message, e.details], [status, code, `m${status}`, { field: "f" }]);
        return true;
      });
    }
    const html = fastClient({ maxRetries: 0, fetch: async () => new Response("<h1>Bad Gateway</h1>", { status: 502 }) });
    await assert.rejects(html.getStudy(1), (e) => e instanceof ServerError && e.code === "http_502" && /Bad Gateway/.test(e.message));
    const notJson = fastClient({ fetch: async () => new Response("<html></html>", { status: 200 }) });
    await assert.rejects(notJson.getStudy(1), (e) => e instanceof ServerError && e.code === "bad_reply");
  });

  test("a body over the server's limit is a 413 PayloadTooLarge", async () => {
    const client = new Client();
    const big = spec("big", { metadata: { blob: "x".repeat(5 * 1024 * 1024) } });
    await assert.rejects(client.createStudy(big), (e) => {
      assert.ok(e instanceof PayloadTooLarge);
      assert.equal(e.status, 413);
      assert.equal(e.code, "payload_too_large");
      return true;
    });
  });
});
