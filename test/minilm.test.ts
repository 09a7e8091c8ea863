// all-MiniLM-L6-v2 with trained weights through the tract engine (as ONNX, built by
// scripts/gen_fixtures.py from the safetensors) against sentence-transformers' vectors, with
// onnxruntime on the same ONNX file as a second opinion, and against the candle embedder.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CandleEmbedder, TractModel, cosineSimilarity } from '../src/index';

const root = join(__dirname, '..');
const ONNX = join(root, '.cache', 'fixtures', 'minilm.onnx');
const DIR = join(root, '.cache', 'models', 'all-MiniLM-L6-v2');
const ref = JSON.parse(readFileSync(join(__dirname, 'data', 'minilm-reference.json'), 'utf8')) as {
  sentences: string[];
  token_ids: number[][];
  embeddings: number[][];
};

/** Masked mean pooling and L2 normalization, as sentence-transformers does. */
function pool(hidden: Float32Array, mask: BigInt64Array, rows: number, seq: number, dims: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let r = 0; r < rows; r++) {
    const v = new Float64Array(dims);
    let n = 0;
    for (let t = 0; t < seq; t++) {
      if (mask[r * seq + t] === 0n) continue;
      n++;
      for (let d = 0; d < dims; d++) v[d]! += hidden[(r * seq + t) * dims + d]!;
    }
    const norm = Math.hypot(...v.map((x) => x / n));
    out.push(Float32Array.from(v, (x) => x / n / norm));
  }
  return out;
}

// The reference token ids (Hugging Face's tokenizer), padded into one batch.
const rows = ref.token_ids.length;
const seq = Math.max(...ref.token_ids.map((t) => t.length));
const ids = new BigInt64Array(rows * seq);
const mask = new BigInt64Array(rows * seq);
ref.token_ids.forEach((t, r) => t.forEach((id, k) => ((ids[r * seq + k] = BigInt(id)), (mask[r * seq + k] = 1n))));
const types = new BigInt64Array(rows * seq);

describe('all-MiniLM-L6-v2 (trained weights) on every engine vs sentence-transformers', () => {
  let model: TractModel;
  let tract: Float32Array[]; // tract's pooled vectors of the reference token ids
  beforeAll(async () => {
    model = await TractModel.load(ONNX, { threads: 2 });
    const shape = [rows, seq];
    const out = await model.run({
      input_ids: { data: ids, shape },
      attention_mask: { data: mask, shape },
      token_type_ids: { data: types, shape },
    });
    tract = pool(out.last_hidden_state!.data as Float32Array, mask, rows, seq, 384);
  });
  afterAll(() => model.dispose());

  it('tract: cosine >= 0.9999 for every reference sentence', () => {
    tract.forEach((v, i) => {
      expect(cosineSimilarity(v, Float32Array.from(ref.embeddings[i]!)), ref.sentences[i]!.slice(0, 40)).toBeGreaterThanOrEqual(0.9999);
    });
  });

  it('onnxruntime on the same ONNX agrees too (the conversion is faithful)', async () => {
    const session = await ort.InferenceSession.create(ONNX, { intraOpNumThreads: 2 });
    const t = (a: BigInt64Array) => new ort.Tensor('int64', a, [rows, seq]);
    const out = await session.run({ input_ids: t(ids), attention_mask: t(mask), token_type_ids: t(types) });
    const vectors = pool(out.last_hidden_state!.data as Float32Array, mask, rows, seq, 384);
    vectors.forEach((v, i) => expect(cosineSimilarity(v, Float32Array.from(ref.embeddings[i]!))).toBeGreaterThanOrEqual(0.9999));
    await session.release();
  });

  /** The pooled vectors of the reference token ids through `m`. */
  async function vectorsOf(m: TractModel): Promise<Float32Array[]> {
    const shape = [rows, seq];
    const out = await m.run({
      input_ids: { data: ids, shape },
      attention_mask: { data: mask, shape },
      token_type_ids: { data: types, shape },
    });
    return pool(out.last_hidden_state!.data as Float32Array, mask, rows, seq, 384);
  }

  /** Whether /proc/cpuinfo lists every flag: independent of oxinfer's own CPU detection. */
  function cpuHas(...flags: string[]): boolean {
    const info = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
    return flags.every((f) => new RegExp(` ${f}\\b`).test(info));
  }

  /** Each sentence's cosine to sentence-transformers' vector, and the largest change from tract's f32. */
  function against(vectors: Float32Array[]): { cosines: number[]; worstDiff: number } {
    let worstDiff = 0;
    vectors.forEach((v, i) => v.forEach((x, d) => (worstDiff = Math.max(worstDiff, Math.abs(x - tract[i]![d]!)))));
    return { cosines: vectors.map((v, i) => cosineSimilarity(v, Float32Array.from(ref.embeddings[i]!))), worstDiff };
  }

  // bfloat16 products (opt-in): weights and activations rounded to 8 bits of mantissa, sums in
  // f32. Stated tolerance: cosine >= 0.999 to sentence-transformers' f32 vectors (measured
  // 0.99997 at worst on the reference sentences, on an AMD Zen 4 host).
  it('precision bfloat16: cosine >= 0.999 for every reference sentence, and not the float32 numbers', async () => {
    const bf16 = await TractModel.load(ONNX, { threads: 2, precision: 'bfloat16' });
    const cpuHasBf16 = cpuHas('avx512_bf16');
    expect(bf16.precision).toBe(cpuHasBf16 ? 'bfloat16' : 'float32');
    expect(model.precision).toBe('float32');
    const { cosines, worstDiff } = against(await vectorsOf(bf16));
    expect(Math.min(...cosines)).toBeGreaterThanOrEqual(0.999);
    // bf16 rounding moves the vectors (~1e-3); on a CPU without it the f32 path gives the same bits.
    if (cpuHasBf16) expect(worstDiff).toBeGreaterThan(1e-5);
    else expect(worstDiff).toBe(0);
    await bf16.dispose();
  });

  // int8 products (opt-in): weights quantized per column, activations per row. Stated tolerance:
  // cosine >= 0.99 to sentence-transformers' f32 vectors (measured 0.9925 at worst, 0.9986 or more
  // for most sentences, on an AMD Zen 4 host), and for every sentence at least as close as
  // onnxruntime running the same weights quantized the way its quantize_dynamic does (one scale
  // per activation tensor; measured 0.970 at worst): an independent int8 implementation.
  it('precision int8: cosine >= 0.99 for every reference sentence, and as close as onnxruntime int8', async () => {
    const int8 = await TractModel.load(ONNX, { threads: 2, precision: 'int8' });
    const cpuHasVnni = cpuHas('avx512f', 'avx512bw', 'avx512_vnni');
    expect(int8.precision).toBe(cpuHasVnni ? 'int8' : 'float32');
    const { cosines, worstDiff } = against(await vectorsOf(int8));
    await int8.dispose();
    expect(Math.min(...cosines)).toBeGreaterThanOrEqual(0.99);
    if (!cpuHasVnni) {
      expect(worstDiff).toBe(0);
      return;
    }
    expect(worstDiff).toBeGreaterThan(1e-4);
    const session = await ort.InferenceSession.create(join(root, '.cache', 'fixtures', 'minilm-int8.onnx'), { intraOpNumThreads: 2 });
    const t = (a: BigInt64Array) => new ort.Tensor('int64', a, [rows, seq]);
    const out = await session.run({ input_ids: t(ids), attention_mask: t(mask), token_type_ids: t(types) });
    await session.release();
    const theirs = pool(out.last_hidden_state!.data as Float32Array, mask, rows, seq, 384);
    theirs.forEach((v, i) => {
      expect(cosines[i], ref.sentences[i]!.slice(0, 40)).toBeGreaterThanOrEqual(cosineSimilarity(v, Float32Array.from(ref.embeddings[i]!)));
    });
  });

  // The CandleEmbedder's dtype 'bfloat16' on a CPU with AVX512-BF16 runs its linear layers on the
  // same kernel (the rest in float32): same stated tolerance (measured 0.99997 at worst on an AMD
  // Zen 4 host). Elsewhere candle's own bf16 runs the whole encoder in bfloat16, a coarser
  // result: 0.998 (measured 0.99842 at worst on an AVX2-only AMD EPYC host).
  it("candle dtype 'bfloat16' on the CPU: cosine >= 0.999 for every reference sentence (0.998 without AVX512-BF16)", async () => {
    const emb = await CandleEmbedder.load(DIR, { threads: 2, dtype: 'bfloat16' });
    expect(emb.dtype).toBe('bfloat16');
    const vectors = await emb.embedTokens({ ids, attentionMask: mask, shape: [rows, seq] });
    let worst = 1;
    ref.embeddings.forEach((e, i) => (worst = Math.min(worst, cosineSimilarity(vectors.row(i), Float32Array.from(e)))));
    expect(worst).toBeGreaterThanOrEqual(cpuHas('avx512_bf16') ? 0.999 : 0.998);
    expect(worst).toBeLessThan(0.999999); // not the float32 numbers
    await emb.dispose();
  });

  // The CandleEmbedder's dtype 'int8' runs its linear layers on the int8 kernel (the rest in
  // float32): same stated tolerance as TractModel's int8 (measured 0.9925 at worst on Zen 4).
  it("candle dtype 'int8' on the CPU: cosine >= 0.99 for every reference sentence, float32 where the CPU lacks VNNI", async () => {
    const emb = await CandleEmbedder.load(DIR, { threads: 2, dtype: 'int8', cache: false });
    const cpuHasVnni = cpuHas('avx512f', 'avx512bw', 'avx512_vnni');
    expect(emb.dtype).toBe(cpuHasVnni ? 'int8' : 'float32');
    const vectors = await emb.embedTokens({ ids, attentionMask: mask, shape: [rows, seq] });
    const cosines = ref.embeddings.map((e, i) => cosineSimilarity(vectors.row(i), Float32Array.from(e)));
    expect(Math.min(...cosines)).toBeGreaterThanOrEqual(0.99);
    if (cpuHasVnni) expect(Math.min(...cosines)).toBeLessThan(0.9999); // not the float32 numbers
    await emb.dispose();
  });

  it('candle and tract give the same vectors for the same token ids (within 1e-5)', async () => {
    const emb = await CandleEmbedder.load(DIR, { threads: 2 });
    const candle = await emb.embedTokens({ ids, attentionMask: mask, shape: [rows, seq] });
    let worst = 0;
    tract.forEach((v, i) => v.forEach((x, d) => (worst = Math.max(worst, Math.abs(x - candle.row(i)[d]!)))));
    expect(worst).toBeLessThanOrEqual(1e-5);
    await emb.dispose();
  });
});
