/** Deterministic benchmark inputs: one job, the same bytes for both engines on every run. */
import { createRequire } from 'node:module';

// The package's own seeded PRNG (built into dist/ by `npm run build:ts`).
const { prng } = createRequire(import.meta.url)('../dist/cjs/prng.js');
export { prng };

export function randomF32(n, seed, scale = 1) {
  const r = prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

/** BERT inputs for `n` sentences of `s` tokens: random ids in [1, vocab), full mask, type 0. */
export function bertInputs(n, s, seed, vocab = 30522) {
  const r = prng(seed);
  return {
    n,
    s,
    ids: BigInt64Array.from({ length: n * s }, () => BigInt(1 + Math.floor(r() * (vocab - 1)))),
    mask: new BigInt64Array(n * s).fill(1n),
    types: new BigInt64Array(n * s),
  };
}

/**
 * Silero VAD v5 model inputs for the first `count` windows of 16 kHz audio, as the official
 * wrapper builds them: 64 samples of context (the previous window's tail; zeros at first) then
 * the 512-sample window. One fresh array per frame.
 */
export function vadFrames(samples, count, window = 512, context = 64) {
  const frames = [];
  let prev = new Float32Array(context);
  for (let start = 0; start + window <= samples.length && frames.length < count; start += window) {
    const f = new Float32Array(context + window);
    f.set(prev, 0);
    f.set(samples.subarray(start, start + window), context);
    prev = f.subarray(window);
    frames.push(f);
  }
  return frames;
}

export function maxAbsDiff(a, b) {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Throws unless max |a - b| <= tol: the benchmark must never time wrong work. */
export function expectClose(what, a, b, tol) {
  const d = maxAbsDiff(a, b);
  if (!(d <= tol)) throw new Error(`correctness check failed: ${what}: max abs diff ${d} > ${tol}`);
  return d;
}

/** Masked mean pooling then L2 normalization (all-ones masks here), as sentence-transformers. */
export function meanPoolNormalize(hidden, n, s, dims) {
  const out = new Float32Array(n * dims);
  for (let r = 0; r < n; r++) {
    const v = out.subarray(r * dims, (r + 1) * dims);
    for (let t = 0; t < s; t++) {
      const at = (r * s + t) * dims;
      for (let d = 0; d < dims; d++) v[d] += hidden[at + d];
    }
    let norm = 0;
    for (let d = 0; d < dims; d++) norm += v[d] * v[d];
    norm = Math.sqrt(norm);
    for (let d = 0; d < dims; d++) v[d] /= norm;
  }
  return out;
}
