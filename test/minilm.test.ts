// all-MiniLM-L6-v2 with trained weights through the tract engine (as ONNX, built by
// scripts/gen_fixtures.py from the safetensors) against sentence-transformers' vectors, with
// onnxruntime on the same ONNX file as a second opinion, and against the candle embedder.
import { readFileSync } from 'node:fs';
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

  it('candle and tract give the same vectors for the same token ids (within 1e-5)', async () => {
    const emb = await CandleEmbedder.load(DIR, { threads: 2 });
    const candle = await emb.embedTokens({ ids, attentionMask: mask, shape: [rows, seq] });
    let worst = 0;
    tract.forEach((v, i) => v.forEach((x, d) => (worst = Math.max(worst, Math.abs(x - candle.row(i)[d]!)))));
    expect(worst).toBeLessThanOrEqual(1e-5);
    await emb.dispose();
  });
});
