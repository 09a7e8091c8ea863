// The GPU check, run on the GPU machine from the folder scripts/gpu/assemble.sh makes (node and
// the CUDA addon inside; no npm, no Rust there). 1) CUDA embeddings vs sentence-transformers'
// vectors (the committed CPU fp32 reference, and torch on this GPU when torch-refs.json is
// there): cosine >= 0.9999 in fp32 (fp16 and bf16 reported). 2) dtype 'int8' (a CPU-only
// kernel) is refused on the GPU with ERR_MODEL_LOAD, and the addon keeps loading models after.
// 3) Embeddings per second at batch 1, 32, 256, S=128, fp32, fp16 and bf16, medians of
// repetitions. 4) Aborting: a call of 256 rows aborted 3 ms in rejects with ERR_ABORTED (its
// layers stop being launched once the token is set), 32 concurrent calls sharing one signal
// all come back, and the embedder's next vectors still match the reference. Writes gpu-check.json into $OUT
// (or the cwd).
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const here = import.meta.dirname;
const require = createRequire(join(here, 'package.json'));
const { CandleEmbedder, cosineSimilarity, nativeAddonPath } = require('./dist/cjs/index.js');
const MODEL = join(here, 'all-MiniLM-L6-v2');
const ref = JSON.parse(readFileSync(join(here, 'minilm-reference.json'), 'utf8'));
const torchRefs = existsSync(join(here, 'torch-refs.json')) ? JSON.parse(readFileSync(join(here, 'torch-refs.json'), 'utf8')) : null;
const out = { date: new Date().toISOString(), addon: nativeAddonPath(), node: process.version };

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function check(dtype) {
  const emb = await CandleEmbedder.load(MODEL, { device: 'cuda', dtype, cache: false });
  const m = await emb.embed(ref.sentences);
  const cos = ref.sentences.map((_, i) => cosineSimilarity(m.row(i), Float32Array.from(ref.embeddings[i])));
  const r = { device: emb.device, dtype, minCosineVsCpuReference: Math.min(...cos) };
  if (torchRefs) {
    const t = torchRefs.embeddings[dtype];
    if (t) r.minCosineVsTorchGpu = Math.min(...ref.sentences.map((_, i) => cosineSimilarity(m.row(i), Float32Array.from(t[i]))));
  }
  return { emb, r };
}

function ids(n, s, seed) {
  let x = seed >>> 0;
  const a = new Int32Array(n * s);
  for (let i = 0; i < a.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    a[i] = 1000 + (x % 28000);
  }
  return a;
}

/** An aborted GPU call, and one signal shared by 32 calls; then the vectors again. */
async function aborts(emb) {
  const r = {};
  const tokens = { ids: ids(256, 128, 7), shape: [256, 128] };
  await emb.embedTokens(tokens, { batchSize: 256 }); // warm
  const ac = new AbortController();
  const t0 = performance.now();
  const call = emb.embedTokens(tokens, { batchSize: 256, signal: ac.signal });
  setTimeout(() => ac.abort(), 3);
  try {
    await call;
    r.aborted = { code: null };
  } catch (e) {
    r.aborted = { code: e?.code, ms: performance.now() - t0 };
  }
  const shared = new AbortController();
  const many = await Promise.allSettled(Array.from({ length: 32 }, (_, i) => emb.embed([ref.sentences[i % ref.sentences.length]], { signal: shared.signal })));
  r.sharedSignal = { fulfilled: many.filter((m) => m.status === 'fulfilled').length, of: many.length };
  const m = await emb.embed(ref.sentences);
  r.minCosineAfter = Math.min(...ref.sentences.map((_, i) => cosineSimilarity(m.row(i), Float32Array.from(ref.embeddings[i]))));
  r.pass = r.aborted.code === 'ERR_ABORTED' && r.sharedSignal.fulfilled === 32 && r.minCosineAfter >= 0.9999;
  return r;
}

async function bench(emb, n, reps) {
  const tokens = { ids: ids(n, 128, n), shape: [n, 128] };
  for (let i = 0; i < 3; i++) await emb.embedTokens(tokens, { batchSize: n }); // warm-up
  const times = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await emb.embedTokens(tokens, { batchSize: n });
    times.push(performance.now() - t0);
  }
  const ms = median(times);
  return { batch: n, seq: 128, medianMs: ms, perSecond: (n * 1000) / ms, reps };
}

out.checks = [];
out.bench = [];
try {
  try {
    await CandleEmbedder.load(MODEL, { device: 'cuda', dtype: 'int8', cache: false });
    out.int8OnGpu = { refused: false };
  } catch (e) {
    out.int8OnGpu = { refused: true, code: e?.code, message: e?.message };
  }
  for (const dtype of ['float32', 'float16', 'bfloat16']) {
    const { emb, r } = await check(dtype);
    out.checks.push(r);
    for (const n of [1, 32, 256]) out.bench.push({ engine: 'oxinfer-cuda', dtype, ...(await bench(emb, n, n === 256 ? 10 : 20)) });
    if (dtype === 'float32') out.aborts = await aborts(emb);
    await emb.dispose();
  }
  const fp32 = out.checks.find((c) => c.dtype === 'float32');
  out.pass = fp32.device === 'cuda' && fp32.minCosineVsCpuReference >= 0.9999 && (fp32.minCosineVsTorchGpu ?? 1) >= 0.9999
    && out.int8OnGpu.refused && out.int8OnGpu.code === 'ERR_MODEL_LOAD' && out.aborts.pass;
} catch (e) {
  out.pass = false;
  out.error = `${e?.code ?? ''} ${e?.message ?? e}`.trim();
}
const dest = join(process.env.OUT ?? '.', 'gpu-check.json');
writeFileSync(dest, JSON.stringify(out, null, 1) + '\n');
console.log(JSON.stringify(out, null, 1));
process.exitCode = out.pass ? 0 : 1;
