// An ASHA study from JavaScript: trials outside the top third of a rung pause,
// come back promoted and train on from their checkpoint (docs/javascript.md).
//
//   TUNEFORGE_URL=http://127.0.0.1:8000 node clients/js/pause_resume.mjs
import { Client } from "./tuneforge.mjs";

const EPOCHS = 9; // rungs at 1 and 3 epochs (reduction factor 3)
const client = new Client(); // TUNEFORGE_URL, TUNEFORGE_API_KEY
const study = await client.createStudy({
  name: process.env.TUNEFORGE_STUDY_NAME ?? `js-asha-${Date.now()}`,
  parameters: [{ name: "lr", type: "float", low: 1e-3, high: 1, scale: "log" }],
  metrics: [{ name: "accuracy", goal: "maximize" }],
  fidelity: { name: "epochs", min: 1, max: EPOCHS },
  early_stopping: { rule: "asha", reduction_factor: 3 },
  max_trials: 9,
});

/** A stand-in for training: each epoch halves the gap to what `lr` can reach. */
function trainOneEpoch(model, lr) {
  const ceiling = 1 - Math.abs(Math.log10(lr) + 1.5) / 3;
  return { epoch: model.epoch + 1, accuracy: model.accuracy + (ceiling - model.accuracy) / 2 };
}

const encode = (model) => new TextEncoder().encode(JSON.stringify(model));
const decode = (bytes) => JSON.parse(new TextDecoder().decode(bytes));
let trained = 0;

for (;;) {
  const [trial] = await study.suggest();
  if (!trial) {
    if (study.state !== "active") break; // completed: every trial is finished
    await new Promise((resolve) => setTimeout(resolve, 500)); // other workers still train
    continue;
  }
  let model = { epoch: 0, accuracy: 0 };
  if (trial.resumeFromStep !== null) {
    const saved = await trial.loadCheckpoint(); // null if none was saved
    if (saved) model = decode(saved);
    console.log(`trial ${trial.number} resumed at epoch ${trial.resumeFromStep} from a checkpoint of epoch ${model.epoch}`);
  }
  while (model.epoch < EPOCHS) {
    model = trainOneEpoch(model, trial.params.lr);
    trained += 1;
    if (await trial.report(model.epoch, { accuracy: model.accuracy })) {
      await trial.saveCheckpoint(encode(model)); // what a promotion trains on from
      break;
    }
  }
  await trial.complete({ accuracy: model.accuracy }); // paused (may come back) or completed
  console.log(`trial ${trial.number} ${trial.state} at epoch ${model.epoch}`);
}

const [best] = await study.best();
console.log(`trained ${trained} epochs; best: trial ${best.number} accuracy ${best.values.accuracy.toFixed(4)}`);
