// Soak and load: many runs, many load/dispose cycles and many concurrent callers against one
// model, watching resident memory and checking every result against the sequential one.
//
//   node --expose-gc bench/soak.mjs [--runs 100000] [--cycles 1000] [--callers 64]
//                                   [--requests 10000] [--signal-runs 1000000] [--report FILE]
//
// RSS growth is measured after a warm-up (--warmup runs before the measured runs; 10% of the
// cycles), from 12 samples across the measured part (the lowest of the first 4 against the
// lowest of the last 4; see sustained()), with a GC before each sample when --expose-gc is given, so that garbage not yet
// collected is not counted as a leak. The warm-up is long because the process's memory grows
// over the first several hundred thousand runs before it levels off (with glibc's malloc: +8 MB
// by 400k runs, then flat through 1.2M; with the addon on mimalloc and small runs inline:
// 75.5 MB at 200k runs, 79.9 MB at 900k, 80.1 MB at 1.2M).
//   --warmup N   runs before the measured ones (default 900000)
//
// The addon's allocator keeps freed memory for 10 s before returning it (alloc.rs; see
// test/memory.test.ts), so a few seconds of load/dispose cycles raise RSS by what that cache
// holds (measured: 124 -> 158 MB over 400 cycles, then flat) without leaking anything. A leak
// is what this measures, so the soak runs with MIMALLOC_PURGE_DELAY=0 (same 400 cycles: flat
// at 83-88 MB): freed memory goes back at once, leaked memory still shows. Set
// MIMALLOC_PURGE_DELAY yourself to soak with another value.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';

if (process.env.MIMALLOC_PURGE_DELAY === undefined) {
  // The allocator reads it when the addon loads: run this script again with it set.
  const env = { ...process.env, MIMALLOC_PURGE_DELAY: '0' };
  try {
    execFileSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { env, stdio: 'inherit' });
    process.exit(0);
  } catch (e) {
    process.exit(typeof e.status === 'number' ? e.status : 1);
  }
}

const root = join(import.meta.dirname, '..');
const require = createRequire(import.meta.url);
const { Batcher, TractModel } = require(join(root, 'dist', 'cjs', 'index.js'));

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const runs = Number(opt('runs', 100_000));
const warmup = Number(opt('warmup', 900_000));
const cycles = Number(opt('cycles', 1_000));
const callers = Number(opt('callers', 64));
const requests = Number(opt('requests', 10_000));
const signalRuns = Number(opt('signal-runs', 1_000_000));
const reportAt = opt('report', undefined);
const fixture = (name) => join(root, '.cache', 'fixtures', name);

const rss = () => {
  globalThis.gc?.();
  return process.memoryUsage().rss;
};
const growth = (before, after) => (after - before) / before;
const mb = (b) => Math.round((b / 1024 / 1024) * 10) / 10;

/** RSS samples taken across the measured calls; growth compares the first and last few. */
const SAMPLES = 12;
const EDGE = 4;

/**
 * Runs `warm` calls of `one(i)`, then `total` more with RSS sampled SAMPLES times along the way;
 * `width` calls in flight at a time. One sample at each end was too noisy under load: freed
 * memory the allocator has not returned yet, or a GC that ran late, moved RSS by +-20 MB over
 * 200 load/dispose cycles on a busy 2-core machine, with no trend over 2,000. So each end is
 * the lowest of its EDGE samples: what the process could not give back. A leak raises both
 * the lows and the highs; retention noise only the highs.
 */
async function sustained(warm, total, width, one) {
  const drive = async (from, to) => {
    let next = from;
    const worker = async () => {
      while (next < to) await one(next++);
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(width, to - from)) }, worker));
  };
  await drive(0, warm);
  const samples = [rss()];
  for (let k = 1; k < SAMPLES; k++) {
    await drive(warm + Math.round(((k - 1) * total) / (SAMPLES - 1)), warm + Math.round((k * total) / (SAMPLES - 1)));
    samples.push(rss());
  }
  return { warm: Math.min(...samples.slice(0, EDGE)), end: Math.min(...samples.slice(-EDGE)), samplesMB: samples.map(mb) };
}

async function soakRuns() {
  const model = await TractModel.load(fixture('add.onnx'));
  const t0 = performance.now();
  const { warm, end, samplesMB } = await sustained(warmup, runs, 16, async (i) => {
    const out = await model.run({ a: new Float32Array([i]), b: new Float32Array([1]) });
    if (out.c.data[0] !== Math.fround(i) + 1) throw new Error(`run ${i}: wrong result ${out.c.data[0]}`);
  });
  return { warmup, runs, seconds: (performance.now() - t0) / 1000, rssWarmMB: mb(warm), rssEndMB: mb(end), growth: growth(warm, end), samplesMB };
}

/**
 * Runs and Batcher requests that all pass one long-lived AbortSignal, as a service passes its
 * shutdown signal to every request: nothing may pile up per call on the signal (napi-rs's
 * AbortSignal argument kept ~200 bytes per call on it until the signal died: +51 MB over 250k
 * runs).
 */
async function soakSignal() {
  // Always on the pool, as any model slower than a few tens of µs runs: the signal goes with
  // the run to the native layer (an inline run never takes it there).
  const model = await TractModel.load(fixture('add.onnx'), { inlineUnderUs: 0, cache: false });
  const batcher = new Batcher(model, { maxBatch: 16, maxDelayMs: 0 });
  const { signal } = new AbortController();
  const t0 = performance.now();
  const { warm, end, samplesMB } = await sustained(Math.ceil(signalRuns / 10), signalRuns, 16, async (i) => {
    const a = new Float32Array([i]);
    const b = new Float32Array([1]);
    const out =
      i % 2 === 0
        ? await model.run({ a, b }, { signal })
        : await batcher.run({ a: { data: a, shape: [1] }, b: { data: b, shape: [1] } }, { signal });
    if (out.c.data[0] !== Math.fround(i) + 1) throw new Error(`signal run ${i}: wrong result ${out.c.data[0]}`);
  });
  await batcher.close();
  return { runs: signalRuns, seconds: (performance.now() - t0) / 1000, rssWarmMB: mb(warm), rssEndMB: mb(end), growth: growth(warm, end), samplesMB };
}

async function soakCycles() {
  const bytes = new Uint8Array(readFileSync(fixture('cnn.onnx')));
  const image = { image: { data: new Float32Array(3 * 32 * 32).fill(0.5), shape: [1, 3, 32, 32] } };
  const t0 = performance.now();
  const { warm, end, samplesMB } = await sustained(Math.ceil(cycles / 10), cycles, 1, async () => {
    const model = await TractModel.load(bytes, { threads: 1 });
    await model.run(image);
    await model.dispose();
  });
  return { cycles, seconds: (performance.now() - t0) / 1000, rssWarmMB: mb(warm), rssEndMB: mb(end), growth: growth(warm, end), samplesMB };
}

async function load() {
  const model = await TractModel.load(fixture('cnn.onnx'));
  const inputs = Array.from({ length: 8 }, (_, k) => ({
    image: { data: Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i * (k + 1))), shape: [1, 3, 32, 32] },
  }));
  const expected = [];
  for (const input of inputs) expected.push(Buffer.from((await model.run(input)).probs.data.buffer).toString('hex'));
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const t0 = performance.now();
  let mismatches = 0;
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      for (let r = 0; r < requests; r++) {
        const k = (c + r) % inputs.length;
        const out = await model.run(inputs[k]);
        if (Buffer.from(out.probs.data.buffer).toString('hex') !== expected[k]) mismatches++;
      }
    }),
  );
  delay.disable();
  return {
    callers,
    requestsEach: requests,
    seconds: (performance.now() - t0) / 1000,
    mismatches,
    eventLoopMaxDelayMs: delay.max / 1e6,
    eventLoopP99DelayMs: delay.percentile(99) / 1e6,
  };
}

const report = {
  mimallocPurgeDelay: process.env.MIMALLOC_PURGE_DELAY,
  date: new Date().toISOString(),
  node: process.version,
  gc: typeof globalThis.gc === 'function',
  runs: await soakRuns(),
  signal: await soakSignal(),
  cycles: await soakCycles(),
  load: await load(),
};
console.log(JSON.stringify(report, null, 2));
if (reportAt) writeFileSync(reportAt, JSON.stringify(report, null, 2) + '\n');
