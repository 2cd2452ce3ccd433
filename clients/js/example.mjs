// Tune the Branin function with tuneforge, end to end, from Node.js 18+.
//
//   TUNEFORGE_URL=http://127.0.0.1:8000 node clients/js/example.mjs
//
// Creates a study (a fresh name each run, or TUNEFORGE_STUDY_NAME to resume one),
// then loops suggest -> report a few "epochs" -> complete until the study has no
// more trials (max_trials 15), and prints the best trial. Exits non-zero on any failure.

import { Client, TuneforgeError } from "./tuneforge.mjs";

const MAX_TRIALS = 15;
const EPOCHS = 3;

/** Branin-Hoo: minimum 0.397887 at (-pi, 12.275), (pi, 2.275), (9.42478, 2.475). */
function branin(x1, x2) {
  const a = 1;
  const b = 5.1 / (4 * Math.PI ** 2);
  const c = 5 / Math.PI;
  const r = 6;
  const s = 10;
  const t = 1 / (8 * Math.PI);
  return a * (x2 - b * x1 ** 2 + c * x1 - r) ** 2 + s * (1 - t) * Math.cos(x1) + s;
}

/** A pretend training run: the loss approaches branin(x1, x2) as the epochs go by. */
function lossAtEpoch(params, epoch) {
  return branin(params.x1, params.x2) * (1 + 1 / (epoch + 1));
}

async function main() {
  const client = new Client(); // TUNEFORGE_URL, TUNEFORGE_API_KEY
  const name =
    process.env.TUNEFORGE_STUDY_NAME ||
    `js-example-branin-${new Date().toISOString().replace(/[:.]/g, "-")}-${Math.random().toString(16).slice(2, 6)}`;
  const study = await client.createStudy(
    {
      name,
      description: "Branin function, tuned by clients/js/example.mjs",
      parameters: [
        { name: "x1", type: "float", low: -5, high: 10 },
        { name: "x2", type: "float", low: 0, high: 15 },
      ],
      metrics: [{ name: "loss", goal: "minimize" }],
      algorithm: "auto",
      max_trials: MAX_TRIALS,
      seed: 7,
    },
    { ifExists: "return" },
  );
  console.log(`study ${study.id} (${study.name}) on ${client.url}, client ${client.clientId}`);

  let evaluated = 0;
  for (;;) {
    const trials = await study.suggest();
    if (trials.length === 0) {
      if (study.state === "completed") break; // budget spent; paused: wait for a resume
      await new Promise((resolve) => setTimeout(resolve, 500)); // busy (max_active_trials) or paused
      continue;
    }
    for (const trial of trials) {
      let loss = Number.NaN;
      let stopped = false;
      for (let epoch = trial.resumeFromStep ?? 0; epoch < EPOCHS; epoch++) {
        loss = lossAtEpoch(trial.params, epoch);
        if (await trial.report(epoch, { loss })) {
          stopped = true; // the early-stopping rule says this trial is not promising
          break;
        }
      }
      await trial.complete({ loss });
      evaluated++;
      const { x1, x2 } = trial.params;
      console.log(
        `trial ${trial.number}: x1=${x1.toFixed(4)} x2=${x2.toFixed(4)} loss=${loss.toFixed(4)} ` +
          `-> ${trial.state}${stopped ? " (stopped early)" : ""}`,
      );
    }
  }

  const [best] = await study.best();
  if (!best) throw new Error(`study ${study.id} ended without a completed trial`);
  console.log(
    `study ${study.id} is ${study.state} after ${evaluated} trials from this run; best: trial ${best.number} ` +
      `x1=${best.params.x1.toFixed(4)} x2=${best.params.x2.toFixed(4)} loss=${best.values?.loss.toFixed(4)}`,
  );
}

main().catch((error) => {
  if (error instanceof TuneforgeError) {
    console.error(`tuneforge error ${error.status ?? "-"} ${error.code}: ${error.message}`);
  } else {
    console.error(error);
  }
  process.exitCode = 1;
});
