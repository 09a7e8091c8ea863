import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { TractModel } from '../src/index';
import { fixture, randomF32, ROOT } from './helpers';

// Each worker loads the built package (dist/) as a user would, and runs the CNN repeatedly.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { TractModel } = require(workerData.root + '/dist/cjs/index.js');
(async () => {
  const model = await TractModel.load(workerData.model);
  let last;
  for (let i = 0; i < workerData.runs; i++) {
    const out = await model.run({ image: { data: workerData.data, shape: [2, 3, 32, 32] } });
    last = Array.from(out.probs.data);
  }
  parentPort.postMessage(last);
})().catch((e) => parentPort.postMessage({ error: e.code + ': ' + e.message }));
`;

function startWorker(data: Float32Array, runs: number): { worker: Worker; result: Promise<unknown> } {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { root: ROOT, model: fixture('cnn.onnx'), data, runs },
  });
  const result = new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return { worker, result };
}

describe('worker_threads', () => {
  it('runs the addon in 4 workers at once, each matching the main thread', async () => {
    const data = randomF32(2 * 3 * 32 * 32, 11);
    const expected = Array.from(
      (await (await TractModel.load(fixture('cnn.onnx'))).run({ image: { data, shape: [2, 3, 32, 32] } })).probs!
        .data as Float32Array,
    );
    const workers = Array.from({ length: 4 }, () => startWorker(data, 25));
    const results = await Promise.all(workers.map((w) => w.result));
    await Promise.all(workers.map((w) => w.worker.terminate()));
    for (const r of results) expect(r).toEqual(expected);
  });

  it('survives a worker terminated mid-run while others finish', async () => {
    const data = randomF32(2 * 3 * 32 * 32, 12);
    const doomed = startWorker(data, 100_000);
    const others = [startWorker(data, 10), startWorker(data, 10)];
    await new Promise((r) => setTimeout(r, 300));
    await doomed.worker.terminate();
    const results = await Promise.all(others.map((w) => w.result));
    await Promise.all(others.map((w) => w.worker.terminate()));
    expect(results[0]).toEqual(results[1]);
    expect((results[0] as number[]).length).toBe(20);
    // And the main thread still runs models afterwards.
    const m = await TractModel.load(fixture('cnn.onnx'));
    expect((await m.run({ image: { data, shape: [2, 3, 32, 32] } })).probs!.shape).toEqual([2, 10]);
  });
});
