#!/usr/bin/env node
/**
 * oxinfer vs onnxruntime-node, side by side, in one process: same models, same inputs, same
 * intra-op thread count. Each case warms up, then runs N repetitions (interleaved between the
 * engines) and reports the median with min/max. See bench/README.md.
 *
 *   node bench/run.mjs [--quick] [--only call,silero,encoder,candle,cnn,stall,concurrency,mixed,serving,real]
 *                      [--threads N] [--reps N] [--filter TEXT] [--no-write]
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bertInputs, expectClose, meanPoolNormalize, randomF32, vadFrames } from './inputs.mjs';
import { describeMachine } from './machine.mjs';
import { spread, table, verdict, writeResults } from './report.mjs';
import { calibrate, interleave, summarize, timeMs } from './stats.mjs';
import { measureStall } from './stall.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(ROOT, 'package.json'));
const FIXTURES = join(ROOT, '.cache', 'fixtures');
const SILERO = join(ROOT, 'models', 'silero_vad_v5.onnx');
const SPEECH = join(ROOT, 'assets', 'speech.wav');

// ---- command line ---------------------------------------------------------------------------
const CASES = ['call', 'silero', 'encoder', 'candle', 'cnn', 'stall', 'concurrency', 'mixed', 'serving', 'real'];
const args = process.argv.slice(2);
function option(name) {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}
if (args.includes('--help') || args.includes('-h')) {
  console.log(`usage: node bench/run.mjs [--quick] [--only ${CASES.join(',')}] [--threads N] [--reps N] [--filter TEXT] [--no-write]`);
  process.exit(0);
}
const quick = args.includes('--quick');
const only = option('--only')?.split(',').map((s) => s.trim()).filter(Boolean) ?? CASES;
for (const c of only) if (!CASES.includes(c)) throw new Error(`unknown case '${c}' (cases: ${CASES.join(', ')})`);
const threads = Number(option('--threads') ?? os.availableParallelism());
if (!Number.isInteger(threads) || threads < 1) throw new Error('--threads must be a positive integer');
const repsOverride = option('--reps') === undefined ? undefined : Number(option('--reps'));
const write = !args.includes('--no-write');
/** `--filter TEXT`: the real case runs only the corpus entries whose id contains TEXT. */
const filter = option('--filter');

/** Repetitions and sizes: full run under ~10 min on 2 cores, --quick about 1 min. */
const P = quick
  ? { reps: 2, slowReps: 1, addCalls: 500, frames: 100, repMs: 100, encB1Runs: 2 }
  : { reps: 9, slowReps: 5, addCalls: 5000, frames: 500, repMs: 800, encB1Runs: 12 };
if (repsOverride !== undefined) P.reps = P.slowReps = repsOverride;

// ---- engines ----------------------------------------------------------------------------------
const distIndex = join(ROOT, 'dist', 'cjs', 'index.js');
if (!existsSync(distIndex)) throw new Error('dist/cjs/index.js is missing: run `npm run build:ts` first');
const ox = require(distIndex);
const { loadSileroVad } = require(join(ROOT, 'dist', 'cjs', 'vad.js'));
const { loadWav } = require(join(ROOT, 'dist', 'cjs', 'wav.js'));
const ort = require('onnxruntime-node');

const ORT_OPTIONS = Object.freeze({
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
});
const oxLoad = (path) => ox.TractModel.load(path, { threads });
const ortLoad = (path) => ort.InferenceSession.create(path, { ...ORT_OPTIONS });

function fixture(name) {
  const p = join(FIXTURES, name);
  if (!existsSync(p)) throw new Error(`missing fixture ${p}: run \`node scripts/fixtures.mjs\``);
  return p;
}

/** A row of the table: oxinfer against the peer, ratio = oxinfer / peer. */
function row(label, unit, better, oxinfer, peer, extra = {}) {
  return { label, unit, better, oxinfer, peer, ratio: oxinfer && peer ? oxinfer.median / peer.median : undefined, ...extra };
}

const log = (...a) => console.error(...a);

// ---- cases ------------------------------------------------------------------------------------

/** Per-call cost on a trivial model (c = a + b, one float): the binding's own overhead. */
async function caseCall() {
  const path = fixture('add.onnx');
  const model = await oxLoad(path);
  // The same model with every run on the libuv pool: what the thread hop costs.
  const pooled = await ox.TractModel.load(path, { threads, inlineUnderUs: 0, cache: false });
  const session = await ortLoad(path);
  const a = new Float32Array([1.5]);
  const b = new Float32Array([2.25]);
  const feeds = () => ({ a: { data: a, shape: [1] }, b: { data: b, shape: [1] } });
  const ortFeeds = () => ({ a: new ort.Tensor('float32', a, [1]), b: new ort.Tensor('float32', b, [1]) });
  // Correctness, once per engine and API.
  const want = 3.75;
  for (const [what, got] of [
    ['oxinfer runSync', model.runSync(feeds()).c.data[0]],
    ['oxinfer run', (await model.run(feeds())).c.data[0]],
    ['oxinfer run (pool)', (await pooled.run(feeds())).c.data[0]],
    ['ort run', (await session.run(ortFeeds())).c.data[0]],
  ]) {
    if (got !== want) throw new Error(`correctness check failed: ${what} gave ${got}, want ${want}`);
  }
  const n = P.addCalls;
  const perCall = (ms) => (ms * 1000) / n;
  const r = await interleave(
    [
      {
        key: 'runSync',
        warmup: () => { for (let i = 0; i < n; i++) model.runSync(feeds()); },
        rep: async () => perCall(await timeMs(() => { for (let i = 0; i < n; i++) model.runSync(feeds()); })),
      },
      {
        key: 'run',
        warmup: async () => { for (let i = 0; i < n; i++) await model.run(feeds()); },
        rep: async () => perCall(await timeMs(async () => { for (let i = 0; i < n; i++) await model.run(feeds()); })),
      },
      {
        key: 'pool',
        warmup: async () => { for (let i = 0; i < n; i++) await pooled.run(feeds()); },
        rep: async () => perCall(await timeMs(async () => { for (let i = 0; i < n; i++) await pooled.run(feeds()); })),
      },
      {
        key: 'ort',
        warmup: async () => { for (let i = 0; i < n; i++) await session.run(ortFeeds()); },
        rep: async () => perCall(await timeMs(async () => { for (let i = 0; i < n; i++) await session.run(ortFeeds()); })),
      },
    ],
    P.reps,
  );
  await session.release();
  const note = `${n} sequential calls per repetition`;
  return [
    row('add.onnx call: runSync vs ort run', 'µs/call', 'lower', r.runSync, r.ort, { target: { on: 'ratio', op: '<=', value: 0.5 }, extra: note }),
    row('add.onnx call: run (async) vs ort run', 'µs/call', 'lower', r.run, r.ort, {
      target: { on: 'ratio', op: '<=', value: 1.0 },
      extra: `${note}; runs inline once measured under inlineUnderUs (default 500 µs)`,
    }),
    row('add.onnx call: run (async, inlineUnderUs: 0: always the libuv pool) vs ort run', 'µs/call', 'lower', r.pool, r.ort, { extra: note }),
  ];
}

/** Silero VAD v5, one 32 ms window at a time with the state carried, over assets/speech.wav. */
async function caseSilero() {
  const audio = loadWav(SPEECH);
  if (audio.sampleRate !== 16000) throw new Error(`expected 16 kHz audio, got ${audio.sampleRate}`);
  const frames = vadFrames(audio.samples, P.frames);
  const model = await loadSileroVad(SILERO, { threads });
  const session = await ortLoad(SILERO);
  const sr = new ort.Tensor('int64', new BigInt64Array([16000n]), []);
  const zeroState = () => new ort.Tensor('float32', new Float32Array(2 * 128), [2, 1, 128]);

  const oxSync = () => {
    const s = model.session();
    const probs = new Float32Array(frames.length);
    for (let i = 0; i < frames.length; i++) probs[i] = s.runSync({ input: { data: frames[i], shape: [1, 576] } }).output.data[0];
    return probs;
  };
  const oxAsync = async () => {
    const s = model.session();
    const probs = new Float32Array(frames.length);
    for (let i = 0; i < frames.length; i++) probs[i] = (await s.run({ input: { data: frames[i], shape: [1, 576] } })).output.data[0];
    return probs;
  };
  const ortRun = async () => {
    let state = zeroState();
    const probs = new Float32Array(frames.length);
    for (let i = 0; i < frames.length; i++) {
      const out = await session.run({ input: new ort.Tensor('float32', frames[i], [1, 576]), state, sr });
      state = out.stateN;
      probs[i] = out.output.data[0];
    }
    return probs;
  };
  // Correctness: the two engines agree frame by frame, and the audio has speech in it.
  const ref = await ortRun();
  const dSync = expectClose('silero runSync vs ort', oxSync(), ref, 1e-4);
  const dAsync = expectClose('silero run vs ort', await oxAsync(), ref, 1e-4);
  if (!ref.some((p) => p > 0.5)) throw new Error('correctness check failed: no speech found in the frames benchmarked');

  const perFrame = (ms) => (ms * 1000) / frames.length;
  const r = await interleave(
    [
      { key: 'runSync', warmup: oxSync, rep: async () => perFrame(await timeMs(oxSync)) },
      { key: 'run', warmup: oxAsync, rep: async () => perFrame(await timeMs(oxAsync)) },
      { key: 'ort', warmup: ortRun, rep: async () => perFrame(await timeMs(ortRun)) },
    ],
    P.reps,
  );
  await session.release();
  const note = `${frames.length} frames per repetition; max |Δp| vs ort ${Math.max(dSync, dAsync).toExponential(1)}`;
  return [
    row('Silero VAD v5 frame: session.runSync vs ort run', 'µs/frame', 'lower', r.runSync, r.ort, { target: { on: 'ratio', op: '<=', value: 0.7 }, extra: note }),
    row('Silero VAD v5 frame: session.run (async) vs ort run', 'µs/frame', 'lower', r.run, r.ort, { target: { on: 'ratio', op: '<=', value: 0.7 }, extra: note }),
  ];
}

function oxBert(x) {
  const shape = [x.n, x.s];
  return { input_ids: { data: x.ids, shape }, attention_mask: { data: x.mask, shape }, token_type_ids: { data: x.types, shape } };
}
function ortBert(x) {
  const t = (d) => new ort.Tensor('int64', d, [x.n, x.s]);
  return { input_ids: t(x.ids), attention_mask: t(x.mask), token_type_ids: t(x.types) };
}

let encoderModels;
/**
 * The MiniLM-shaped encoder, loaded once for the encoder, stall and concurrency cases; `reduced`
 * holds the same file loaded with each reduced precision this CPU runs (`precision: 'bfloat16'`
 * needs AVX512-BF16, 'int8' AVX512-VNNI), each with how far it may move the hidden states (values
 * of about unit scale, after LayerNorm) from onnxruntime's f32 ones: bf16 keeps 8 bits of
 * mantissa, int8 256 steps over each row's range.
 */
async function encoders() {
  encoderModels ??= (async () => {
    const path = fixture('encoder-minilm.onnx');
    const reduced = [];
    for (const [precision, tol] of [['bfloat16', 0.1], ['int8', 0.15]]) {
      const m = await ox.TractModel.load(path, { threads, precision });
      if (m.precision === precision) reduced.push({ precision, model: m, tol });
      else log(`this CPU lacks the instructions of precision ${precision}: its rows are left out`);
    }
    // onnxruntime's own int8 of the same weights (scripts/gen_fixtures.py, quantize_dynamic):
    // the peer at the same precision as the int8 rows.
    const int8 = reduced.find((m) => m.precision === 'int8');
    if (int8) int8.peer = await ortLoad(fixture('encoder-minilm-int8.onnx'));
    return { model: await oxLoad(path), session: await ortLoad(path), reduced };
  })();
  return encoderModels;
}

/**
 * How far onnxruntime's int8 model (one scale per activation tensor, coarser than oxinfer's per
 * row) may move the hidden states from its f32 ones.
 */
const PEER_INT8_TOL = 0.5;

/** MiniLM-L6-shaped encoder (random weights), S = 128: sentences per second. */
async function caseEncoder() {
  const { model, session, reduced } = await encoders();
  const rows = [];
  for (const n of [1, 32]) {
    const x = bertInputs(n, 128, 100 + n);
    const ours = await model.run(oxBert(x));
    const theirs = await session.run(ortBert(x));
    const d = expectClose(`encoder batch ${n} vs ort`, ours.last_hidden_state.data, theirs.last_hidden_state.data, 1e-3);
    const runs = n === 1 ? P.encB1Runs : 1;
    const rate = (ms) => (n * runs) / (ms / 1000);
    const loop = (m) => async () => rate(await timeMs(async () => { for (let i = 0; i < runs; i++) await m.run(oxBert(x)); }));
    const others = n === 32 ? reduced : [];
    const dReduced = {};
    for (const { precision, model: m, tol, peer } of others) {
      dReduced[precision] = expectClose(`encoder batch ${n}, ${precision}, vs ort`, (await m.run(oxBert(x))).last_hidden_state.data, theirs.last_hidden_state.data, tol);
      if (peer) dReduced[`ort ${precision}`] = expectClose(`ort's ${precision} encoder batch ${n} vs ort`, (await peer.run(ortBert(x))).last_hidden_state.data, theirs.last_hidden_state.data, PEER_INT8_TOL);
    }
    const ortLoop = (s) => async () => rate(await timeMs(async () => { for (let i = 0; i < runs; i++) await s.run(ortBert(x)); }));
    const r = await interleave(
      [
        { key: 'ox', warmup: () => model.run(oxBert(x)), rep: loop(model) },
        ...others.map(({ precision, model: m }) => ({ key: precision, warmup: () => m.run(oxBert(x)), rep: loop(m) })),
        ...others.filter((o) => o.peer).map(({ precision, peer }) => ({ key: `ort ${precision}`, warmup: () => peer.run(ortBert(x)), rep: ortLoop(peer) })),
        { key: 'ort', warmup: () => session.run(ortBert(x)), rep: ortLoop(session) },
      ],
      n === 1 ? P.reps : P.slowReps,
    );
    rows.push(
      row(`MiniLM encoder batch ${n}, S=128: run vs ort run`, 'sentences/s', 'higher', r.ox, r.ort, {
        target: n === 32 ? { on: 'ratio', op: '>=', value: 1.0 } : undefined,
        extra: `${runs} run(s) of batch ${n} per repetition; max |Δ| vs ort ${d.toExponential(1)}`,
      }),
    );
    for (const { precision, peer } of others) {
      rows.push(
        row(`MiniLM encoder batch ${n}, S=128, precision ${precision}: run vs ort run (f32)`, 'sentences/s', 'higher', r[precision], r.ort, {
          extra: `opt-in reduced precision, not the same numbers as ort: max |Δ| vs ort ${dReduced[precision].toExponential(1)} (f32: ${d.toExponential(1)})`,
        }),
      );
      if (peer) {
        rows.push(
          row(`MiniLM encoder batch ${n}, S=128, precision ${precision}: run vs ort run of its ${precision} model`, 'sentences/s', 'higher', r[precision], r[`ort ${precision}`], {
            extra: `the same precision on both sides; max |Δ| vs ort f32: oxinfer ${dReduced[precision].toExponential(1)}, ort ${dReduced[`ort ${precision}`].toExponential(1)}`,
          }),
        );
      }
    }
  }
  return rows;
}

/**
 * all-MiniLM-L6-v2 with its trained weights, S = 128: the candle embedder (embedTokens: encoder,
 * mean pooling, normalization) against onnxruntime on the same weights as ONNX (minilm.onnx,
 * pooled in JS, which costs it nothing measurable), and tract on that ONNX.
 */
async function caseCandle() {
  const dir = join(ROOT, '.cache', 'models', 'all-MiniLM-L6-v2');
  if (!existsSync(join(dir, 'model.safetensors'))) throw new Error(`missing ${dir}: run \`node scripts/fixtures.mjs\``);
  const path = fixture('minilm.onnx');
  const emb = await ox.CandleEmbedder.load(dir, { threads, cache: false });
  // The embedder's reduced dtypes run the same kernels as TractModel's precisions, so on the
  // CPUs that encoders() found to have them (elsewhere bf16 is candle's own, slower, and int8
  // float32). Pooled unit vectors: 0.02 per component bounds a cosine of ~0.99 at worst (bf16
  // ~1e-3 measured); int8 0.05.
  const tol = { bfloat16: 0.02, int8: 0.05 };
  const reduced = [];
  for (const { precision } of (await encoders()).reduced) {
    reduced.push({ dtype: precision, emb: await ox.CandleEmbedder.load(dir, { threads, cache: false, dtype: precision }) });
  }
  const model = await oxLoad(path);
  const session = await ortLoad(path);
  const rows = [];
  for (const n of [1, 32]) {
    const x = bertInputs(n, 128, 200 + n);
    const tokens = { ids: x.ids, attentionMask: x.mask, shape: [n, 128] };
    const pooled = (hidden) => meanPoolNormalize(hidden, n, 128, 384);
    const want = pooled((await session.run(ortBert(x))).last_hidden_state.data);
    const dCandle = expectClose(`candle batch ${n} vs ort`, (await emb.embedTokens(tokens, { batchSize: n })).data, want, 1e-4);
    const dTract = expectClose(`tract batch ${n} vs ort`, pooled((await model.run(oxBert(x))).last_hidden_state.data), want, 1e-4);
    const dReduced = {};
    for (const { dtype, emb: e } of reduced) {
      dReduced[dtype] = expectClose(`candle ${dtype} batch ${n} vs ort`, (await e.embedTokens(tokens, { batchSize: n })).data, want, tol[dtype]);
    }
    const runs = n === 1 ? P.encB1Runs : 1;
    const rate = (ms) => (n * runs) / (ms / 1000);
    const timed = (key, once) => ({
      key,
      warmup: once,
      rep: async () => rate(await timeMs(async () => { for (let i = 0; i < runs; i++) await once(); })),
    });
    const r = await interleave(
      [
        timed('candle', () => emb.embedTokens(tokens, { batchSize: n })),
        ...reduced.map(({ dtype, emb: e }) => timed(dtype, () => e.embedTokens(tokens, { batchSize: n }))),
        timed('tract', async () => pooled((await model.run(oxBert(x))).last_hidden_state.data)),
        timed('ort', async () => pooled((await session.run(ortBert(x))).last_hidden_state.data)),
      ],
      n === 1 ? P.reps : P.slowReps,
    );
    const extra = `${runs} call(s) of batch ${n} per repetition; pooled vectors max |Δ| vs ort: candle ${dCandle.toExponential(1)}, tract ${dTract.toExponential(1)}`;
    rows.push(
      row(`all-MiniLM-L6-v2 batch ${n}, S=128: candle embedder vs ort`, 'sentences/s', 'higher', r.candle, r.ort, {
        target: n === 32 ? { on: 'ratio', op: '>=', value: 1.0 } : undefined,
        extra,
      }),
      row(`all-MiniLM-L6-v2 batch ${n}, S=128: tract run vs ort`, 'sentences/s', 'higher', r.tract, r.ort, { extra }),
    );
    for (const { dtype } of reduced) {
      rows.push(
        row(`all-MiniLM-L6-v2 batch ${n}, S=128: candle embedder dtype ${dtype} vs ort (f32)`, 'sentences/s', 'higher', r[dtype], r.ort, {
          extra: `opt-in reduced precision, not the same numbers as ort: pooled vectors max |Δ| vs ort ${dReduced[dtype].toExponential(1)}`,
        }),
      );
    }
  }
  await emb.dispose();
  for (const { emb: e } of reduced) await e.dispose();
  await session.release();
  return rows;
}

/** Small CNN on 32x32 images: images per second at batch 1 and 8. */
async function caseCnn() {
  const path = fixture('cnn.onnx');
  const model = await oxLoad(path);
  const session = await ortLoad(path);
  const rows = [];
  for (const n of [1, 8]) {
    const data = randomF32(n * 3 * 32 * 32, 10 + n);
    const shape = [n, 3, 32, 32];
    const oxRun = () => model.run({ image: { data, shape } });
    const ortRun = () => session.run({ image: new ort.Tensor('float32', data, shape) });
    const d = expectClose(`cnn batch ${n} vs ort`, (await oxRun()).probs.data, (await ortRun()).probs.data, 1e-4);
    // Same number of runs per repetition for both engines, sized on the slower of the two.
    const iters = Math.min(await calibrate(oxRun, P.repMs, { probe: 10 }), await calibrate(ortRun, P.repMs, { probe: 10 }));
    const loop = (f) => async () => { for (let i = 0; i < iters; i++) await f(); };
    const rate = (ms) => (n * iters) / (ms / 1000);
    const r = await interleave(
      [
        { key: 'ox', warmup: loop(oxRun), rep: async () => rate(await timeMs(loop(oxRun))) },
        { key: 'ort', warmup: loop(ortRun), rep: async () => rate(await timeMs(loop(ortRun))) },
      ],
      P.reps,
    );
    rows.push(
      row(`CNN 32x32 batch ${n}: run vs ort run`, 'images/s', 'higher', r.ox, r.ort, {
        target: { on: 'ratio', op: '>=', value: 1.0 },
        extra: `${iters} sequential runs per repetition; max |Δ| vs ort ${d.toExponential(1)}`,
      }),
    );
    if (n === 8) {
      // Sequential awaited runs that go inline: the per-turn budget must still let the loop in.
      const stall = (f) => async () => (await measureStall(loop(f))).stallMs;
      const s = await interleave([{ key: 'ox', rep: stall(oxRun) }, { key: 'ort', rep: stall(ortRun) }], P.reps);
      rows.push(
        row(`event-loop stall during ${iters} sequential CNN batch-8 runs: run vs ort run`, 'ms', 'lower', s.ox, s.ort, {
          extra: 'oxinfer: inline runs give the loop a turn after each ms of them; ort: each run waits for a setImmediate, then holds the loop for the whole run',
        }),
      );
    }
  }
  await session.release();
  return rows;
}

/**
 * The real-model corpus (test/corpus): every entry at its two shapes (batch 1 and a batch of
 * 2-3), oxinfer run vs ort run on the same file, inputs and threads; one row per entry and
 * shape, and the geometric mean of the ratios. The quantized forms run in onnxruntime as they
 * do for users (graph optimizations on).
 */
/** Warm-up per engine before an entry-shape's repetitions. */
const REAL_WARMUP_MS = 200;

async function caseReal() {
  const { readEntries, drawFeeds } = await import(join(ROOT, 'test', 'corpus', 'draw.mjs'));
  const helpers = { prng: require(join(ROOT, 'dist', 'cjs', 'prng.js')).prng, toFloat16Bits: require(join(ROOT, 'dist', 'cjs', 'float16.js')).toFloat16Bits };
  const dir = join(ROOT, 'test', 'corpus');
  const rows = [];
  const ratios = [];
  for (const entry of readEntries(dir)) {
    if (filter !== undefined && !entry.id.includes(filter)) continue;
    const path = join(dir, entry.file);
    let model;
    try {
      model = await oxLoad(path);
    } catch (e) {
      log(`real: ${entry.id}: ${e.message.slice(0, 160)}`);
      continue;
    }
    const session = await ortLoad(path);
    for (let s = 0; s < entry.shapes.length; s++) {
      const f = drawFeeds(entry, s, helpers);
      const dtypeOf = (name) => entry.inputs.find((i) => i.name === name).dtype;
      const ortFeeds = Object.fromEntries(Object.entries(f).map(([k, t]) => [k, new ort.Tensor(dtypeOf(k), t.data, t.shape)]));
      const oxRun = () => model.run(f);
      const ortRun = () => session.run(ortFeeds);
      await oxRun(); // a per-shape plan is made at its first run: not timed
      const iters = Math.min(await calibrate(oxRun, P.repMs / 4, { probe: 5 }), await calibrate(ortRun, P.repMs / 4, { probe: 5 }));
      const loop = (fn) => async () => { for (let i = 0; i < iters; i++) await fn(); };
      const per = (ms) => ms / iters;
      // Warm for a fixed time, not one repetition: a quick repetition (~25 ms) left the first
      // entries of a process measured cold (JIT, caches, the inline policy's probes).
      const warm = (fn) => async () => { for (const t0 = performance.now(); performance.now() - t0 < REAL_WARMUP_MS; ) await loop(fn)(); };
      const r = await interleave(
        [
          { key: 'ox', warmup: warm(oxRun), rep: async () => per(await timeMs(loop(oxRun))) },
          { key: 'ort', warmup: warm(ortRun), rep: async () => per(await timeMs(loop(ortRun))) },
        ],
        P.reps,
      );
      const dims = Object.entries(entry.shapes[s]).map(([k, v]) => `${k}=${v}`).join(' ');
      const item = row(`${entry.id} (${dims}): run vs ort run`, 'ms', 'lower', r.ox, r.ort, { extra: `planning: ${model.planning}` });
      rows.push(item);
      ratios.push(item.ratio);
    }
    await model.dispose();
    await session.release();
  }
  const geomean = Math.exp(ratios.reduce((a, x) => a + Math.log(x), 0) / ratios.length);
  const worst = Math.max(...ratios);
  log(`real: geometric mean of oxinfer / ort time over ${ratios.length} runs: ${geomean.toFixed(3)}; slowest ratio ${worst.toFixed(2)}`);
  rows.push({ label: `real corpus: geometric mean of time ratios (${ratios.length} entry-shapes)`, unit: 'ratio', better: 'lower', ratio: geomean, extra: `slowest ${worst.toFixed(2)}` });
  return rows;
}

const CONCURRENT = 16;
/** 16 different batch-1, S=128 requests. */
const requests = () => Array.from({ length: CONCURRENT }, (_, i) => bertInputs(1, 128, 1000 + i));

/** Serves the 16 requests concurrently through `serve`, measuring stall and total time. */
async function serveAll(xs, serve) {
  const m = await measureStall(() => Promise.all(xs.map(serve)));
  return m;
}

/** Checks every served output against the reference outputs (per request). */
function checkServed(what, outs, refs, tol = 1e-3) {
  let d = 0;
  outs.forEach((o, i) => { d = Math.max(d, expectClose(`${what}, request ${i}`, o, refs[i], tol)); });
  return d;
}

/** One encoder request through an oxinfer model or Batcher (`run`), or an ort session: its hidden states. */
const oxHidden = (engine) => async (x) => (await engine.run(oxBert(x))).last_hidden_state.data;
const ortHidden = (session) => async (x) => (await session.run(ortBert(x))).last_hidden_state.data;

/**
 * An `interleave` entry serving the requests `xs` at once through `serve`, each repetition's
 * total time; every output is checked against `refs` (within `tol`), the largest deviation kept
 * in `seen.diffs[key]` and each repetition's longest stall in `seen.stalls[key]`.
 */
function servedAtOnce(seen, key, xs, serve, refs, tol) {
  seen.diffs[key] = 0;
  seen.stalls[key] = [];
  const rep = async () => {
    const m = await serveAll(xs, serve);
    seen.diffs[key] = Math.max(seen.diffs[key], checkServed(`${seen.what} ${key}`, m.result, refs, tol));
    seen.stalls[key].push(m.stallMs);
    return m.totalMs;
  };
  return { key, warmup: () => serveAll(xs, serve), rep };
}

/** Longest event-loop stall while 16 concurrent batch-1 encoder requests are served. */
async function caseStall() {
  const { model, session } = await encoders();
  const xs = requests();
  const [oxServe, ortServe] = [oxHidden(model), ortHidden(session)];
  const refs = await Promise.all(xs.map(ortServe));
  const totals = { ox: [], ort: [], oxStallInterval: [], ortStallInterval: [] };
  let d = 0;
  const one = (key, serve) => async () => {
    const m = await serveAll(xs, serve);
    d = Math.max(d, checkServed(`stall case ${key}`, m.result, refs));
    totals[key].push(m.totalMs);
    totals[`${key}StallInterval`].push(m.intervalStallMs);
    return m.stallMs;
  };
  const r = await interleave(
    [
      { key: 'ox', warmup: () => serveAll(xs, oxServe), rep: one('ox', oxServe) },
      { key: 'ort', warmup: () => serveAll(xs, ortServe), rep: one('ort', ortServe) },
    ],
    P.reps,
  );
  const ortTotal = summarize(totals.ort).median;
  const oxTotal = summarize(totals.ox).median;
  return [
    row(`event-loop stall, ${CONCURRENT} concurrent batch-1 encoder requests: run vs ort run`, 'ms', 'lower', r.ox, r.ort, {
      target: { on: 'oxinfer', op: '<=', value: 5 },
      extra:
        `whole run: oxinfer ${oxTotal.toFixed(1)} ms, ort ${ortTotal.toFixed(1)} ms (ort stall = ${((r.ort.median / ortTotal) * 100).toFixed(0)}% of its run); ` +
        `setInterval(1) meter: oxinfer ${summarize(totals.oxStallInterval).median.toFixed(1)} ms, ort ${summarize(totals.ortStallInterval).median.toFixed(1)} ms`,
      peerTotalMs: summarize(totals.ort),
      oxinferTotalMs: summarize(totals.ox),
      intervalMeter: { oxinfer: summarize(totals.oxStallInterval), peer: summarize(totals.ortStallInterval) },
    }),
  ];
}

/** Wall time for 16 concurrent batch-1 encoder requests: plain run, through a Batcher, ort. */
async function caseConcurrency() {
  const { model, session, reduced } = await encoders();
  const batcher = new ox.Batcher(model, { maxBatch: CONCURRENT, maxDelayMs: 2 });
  const others = reduced.map((m) => ({ ...m, batcher: new ox.Batcher(m.model, { maxBatch: CONCURRENT, maxDelayMs: 2 }) }));
  const xs = requests();
  const ortServe = ortHidden(session);
  const refs = await Promise.all(xs.map(ortServe));
  const peers = others.filter((o) => o.peer).map((o) => ({ key: `ort ${o.precision}`, serve: ortHidden(o.peer) }));
  const seen = { what: 'concurrency', diffs: {}, stalls: {} };
  const { diffs, stalls } = seen;
  const r = await interleave(
    [
      servedAtOnce(seen, 'run', xs, oxHidden(model), refs),
      servedAtOnce(seen, 'batcher', xs, oxHidden(batcher), refs),
      ...others.map((o) => servedAtOnce(seen, o.precision, xs, oxHidden(o.batcher), refs, o.tol)),
      ...peers.map((p) => servedAtOnce(seen, p.key, xs, p.serve, refs, PEER_INT8_TOL)),
      servedAtOnce(seen, 'ort', xs, ortServe, refs),
    ],
    P.reps,
  );
  await batcher.close();
  for (const o of others) await o.batcher.close();
  const note = (k) => `event-loop stall ${summarize(stalls[k]).median.toFixed(1)} ms (ort ${summarize(stalls.ort).median.toFixed(1)} ms); max |Δ| vs ort ${diffs[k].toExponential(1)}`;
  const reducedRows = others.flatMap((o) => [
    row(`${CONCURRENT} concurrent batch-1 encoder requests: Batcher(maxBatch 16, 2 ms), precision ${o.precision}, vs ort run (f32)`, 'ms', 'lower', r[o.precision], r.ort, {
      extra: `opt-in reduced precision, not the same numbers as ort; ${note(o.precision)}`,
    }),
    ...(o.peer
      ? [
          row(`${CONCURRENT} concurrent batch-1 encoder requests: Batcher(maxBatch 16, 2 ms), precision ${o.precision}, vs ort run of its ${o.precision} model`, 'ms', 'lower', r[o.precision], r[`ort ${o.precision}`], {
            extra: `the same precision on both sides; ort's max |Δ| vs ort f32 ${diffs[`ort ${o.precision}`].toExponential(1)}; ${note(o.precision)}`,
          }),
        ]
      : []),
  ]);
  return [
    row(`${CONCURRENT} concurrent batch-1 encoder requests: run vs ort run`, 'ms', 'lower', r.run, r.ort, { extra: note('run') }),
    row(`${CONCURRENT} concurrent batch-1 encoder requests: Batcher(maxBatch 16, 2 ms) vs ort run`, 'ms', 'lower', r.batcher, r.ort, {
      target: { on: 'ratio', op: '<=', value: 0.5 },
      extra: note('batcher'),
    }),
    ...reducedRows,
  ];
}

/**
 * 16 concurrent batch-1 encoder requests of 16 to 128 tokens (a spread of sentence lengths):
 * plain run, a Batcher padding within groups of similar lengths, ort (each at its own length).
 * No target; it shows what padding costs a Batcher and what grouping by size wins back.
 */
async function caseMixed() {
  const { model, session } = await encoders();
  const lengths = Array.from({ length: CONCURRENT }, (_, i) => 16 + Math.round((i * 112) / (CONCURRENT - 1)));
  const xs = lengths.map((s, i) => bertInputs(1, s, 2000 + i));
  const batcher = new ox.Batcher(model, { maxBatch: CONCURRENT, maxDelayMs: 2, pad: { input_ids: 0n, attention_mask: 0n, token_type_ids: 0n } });
  const ortServe = ortHidden(session);
  const refs = await Promise.all(xs.map(ortServe));
  const seen = { what: 'mixed', diffs: {}, stalls: {} };
  const { diffs } = seen;
  const r = await interleave(
    [
      servedAtOnce(seen, 'run', xs, oxHidden(model), refs),
      servedAtOnce(seen, 'batcher', xs, oxHidden(batcher), refs),
      servedAtOnce(seen, 'ort', xs, ortServe, refs),
    ],
    P.reps,
  );
  await batcher.close();
  const label = `${CONCURRENT} concurrent batch-1 encoder requests of 16-128 tokens`;
  return [
    row(`${label}: run vs ort run`, 'ms', 'lower', r.run, r.ort, { extra: `max |Δ| vs ort ${diffs.run.toExponential(1)}` }),
    row(`${label}: Batcher(maxBatch 16, 2 ms, pad) vs ort run`, 'ms', 'lower', r.batcher, r.ort, {
      extra: `padded within groups of similar lengths; max |Δ| vs ort ${diffs.batcher.toExponential(1)}`,
    }),
  ];
}

/**
 * An embedding service: 64 concurrent one-text requests (the reference sentences of
 * test/data/minilm-reference.json of up to 35 tokens, in turn) to all-MiniLM-L6-v2: oxinfer's
 * embed per request, an EmbedBatcher joining them, and ort per request on the reference's own
 * token ids (Hugging Face's tokenizer; oxinfer tokenizes inside its time). No target.
 */
async function caseServing() {
  const dir = join(ROOT, '.cache', 'models', 'all-MiniLM-L6-v2');
  if (!existsSync(join(dir, 'model.safetensors'))) throw new Error(`missing ${dir}: run \`node scripts/fixtures.mjs\``);
  const reference = JSON.parse(readFileSync(join(ROOT, 'test', 'data', 'minilm-reference.json'), 'utf8'));
  const short = reference.sentences.map((text, i) => ({ text, ids: reference.token_ids[i] })).filter((q) => q.ids.length <= 64);
  const xs = Array.from({ length: SERVED }, (_, i) => short[i % short.length]);
  const emb = await ox.CandleEmbedder.load(dir, { threads, cache: false });
  const batcher = new ox.EmbedBatcher(emb, { maxBatch: SERVED, maxDelayMs: 2 });
  const session = await ortLoad(fixture('minilm.onnx'));
  const ortServe = async (q) => {
    const n = q.ids.length;
    const x = { n: 1, s: n, ids: BigInt64Array.from(q.ids, BigInt), mask: new BigInt64Array(n).fill(1n), types: new BigInt64Array(n) };
    return meanPoolNormalize((await session.run(ortBert(x))).last_hidden_state.data, 1, n, 384);
  };
  const oxServe = (engine) => async (q) => (await engine.embed([q.text])).data;
  const refs = await Promise.all(xs.map(ortServe));
  const seen = { what: 'serving', diffs: {}, stalls: {} };
  const r = await interleave(
    [
      servedAtOnce(seen, 'embed', xs, oxServe(emb), refs, 1e-4),
      servedAtOnce(seen, 'batcher', xs, oxServe(batcher), refs, 1e-4),
      servedAtOnce(seen, 'ort', xs, ortServe, refs),
    ],
    P.reps,
  );
  await batcher.close();
  await emb.dispose();
  await session.release();
  const label = `${SERVED} concurrent one-text embedding requests (2-35 tokens), all-MiniLM-L6-v2`;
  const note = (k) => `pooled vectors max |Δ| vs ort ${seen.diffs[k].toExponential(1)}; event-loop stall ${summarize(seen.stalls[k]).median.toFixed(1)} ms (ort ${summarize(seen.stalls.ort).median.toFixed(1)} ms)`;
  return [
    row(`${label}: embed vs ort run`, 'ms', 'lower', r.embed, r.ort, { extra: note('embed') }),
    row(`${label}: EmbedBatcher(maxBatch ${SERVED}, 2 ms) vs ort run`, 'ms', 'lower', r.batcher, r.ort, { extra: note('batcher') }),
  ];
}
const SERVED = 64;

const RUNNERS = { real: caseReal, call: caseCall, silero: caseSilero, encoder: caseEncoder, candle: caseCandle, cnn: caseCnn, stall: caseStall, concurrency: caseConcurrency, mixed: caseMixed, serving: caseServing };

// ---- main -------------------------------------------------------------------------------------
const started = new Date();
const t0 = performance.now();
const machine = describeMachine(ROOT, { threads, nativeAddonPath: ox.nativeAddonPath() });
log(`oxinfer ${machine.oxinfer} vs onnxruntime-node ${machine.onnxruntimeNode} on ${machine.cpu} (${machine.coresAvailable} cores available), Node ${machine.node}`);
log(`threads: ${threads} intra-op for both engines; ${quick ? 'quick run' : 'full run'}: ${P.reps} repetitions (${P.slowReps} for batch-32 encoder); cases: ${only.join(', ')}`);

const cases = [];
for (const name of CASES.filter((c) => only.includes(c))) {
  const c0 = performance.now();
  log(`\n[${name}] running...`);
  const rows = await RUNNERS[name]();
  const seconds = (performance.now() - c0) / 1000;
  cases.push({ name, seconds, rows });
  log(`[${name}] done in ${seconds.toFixed(1)} s`);
  for (const r of rows) if (r.oxinfer) log(`  ${r.label}: ${r.oxinfer.median.toFixed(2)} vs ${r.peer.median.toFixed(2)} ${r.unit} (${r.ratio.toFixed(2)}x)`);
}
const totalSeconds = (performance.now() - t0) / 1000;
const rows = cases.flatMap((c) => c.rows);

console.log(`\noxinfer ${machine.oxinfer} vs onnxruntime-node ${machine.onnxruntimeNode}: ${machine.cpu}, ${machine.coresAvailable} cores, ${threads} threads, Node ${machine.node}${quick ? ' (--quick)' : ''}\n`);
console.log(table(rows));
console.log('\nratio = oxinfer / onnxruntime-node, medians; read it with the "better" column (lower is better: < 1 means oxinfer wins; higher is better: > 1 means oxinfer wins).');
console.log('\nmin – max per row:');
console.log(spread(rows));
console.log(`\ntotal ${totalSeconds.toFixed(1)} s`);

if (write) {
  const result = {
    startedAt: started.toISOString(),
    totalSeconds,
    mode: quick ? 'quick' : 'full',
    parameters: P,
    machine,
    ortOptions: ORT_OPTIONS,
    cases: cases.map((c) => ({
      ...c,
      rows: c.rows.map((r) => ({ ...r, verdict: verdict(r) })),
    })),
  };
  const files = writeResults(join(ROOT, 'bench', 'results'), result);
  console.log(`results: ${files.map((f) => f.slice(ROOT.length + 1)).join(', ')}`);
}
