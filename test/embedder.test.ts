// CandleEmbedder against sentence-transformers (PyTorch) on the same weights, plus batching,
// pre-tokenized input, the model cache, bad folders and bad calls.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AbortedError,
  CandleEmbedder,
  DeviceUnavailableError,
  DisposedError,
  InputDtypeError,
  InputShapeError,
  ModelLoadError,
  TractModel,
  cache,
  cosineSimilarity,
} from '../src/index';

const root = join(__dirname, '..');
const MODEL = join(root, '.cache', 'models', 'all-MiniLM-L6-v2');

interface Reference {
  max_seq_length: number;
  sentences: string[];
  token_ids: number[][];
  embeddings: number[][];
}
const ref = JSON.parse(readFileSync(join(__dirname, 'data', 'minilm-reference.json'), 'utf8')) as Reference;

let emb: CandleEmbedder;
beforeAll(async () => {
  emb = await CandleEmbedder.load(MODEL, { threads: 2 });
});
afterAll(async () => {
  await emb.dispose();
});

/** Every item of an async iterable (Array.fromAsync is Node >= 22). */
async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of items) out.push(x);
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('CandleEmbedder vs sentence-transformers (all-MiniLM-L6-v2, fp32 CPU)', () => {
  it('reads the sentence-transformers settings of the folder', () => {
    expect(emb.dims).toBe(384);
    expect(emb.maxLength).toBe(ref.max_seq_length); // 256, from sentence_bert_config.json
    expect(emb.pooling).toBe('mean');
    expect(emb.normalize).toBe(true);
    expect(emb.device).toBe('cpu');
    expect(emb.dtype).toBe('float32');
  });

  it('gives cosine >= 0.9999 for every reference sentence (long, empty-ish, non-ASCII, emoji)', async () => {
    const m = await emb.embed(ref.sentences);
    expect([m.rows, m.dims]).toEqual([ref.sentences.length, 384]);
    const worst = ref.sentences.map((s, i) => ({ s, cos: cosineSimilarity(m.row(i), Float32Array.from(ref.embeddings[i]!)) }));
    for (const w of worst) expect(w.cos, w.s.slice(0, 40)).toBeGreaterThanOrEqual(0.9999);
    // Tighter than the target in practice: report the measured worst case if this ever slips.
    const min = Math.min(...worst.map((w) => w.cos));
    expect(min).toBeGreaterThan(0.99999);
    for (const v of m) expect(Math.hypot(...v)).toBeCloseTo(1, 5);
  });

  it('batched and one-by-one embedding agree within 1e-5', async () => {
    const all = await emb.embed(ref.sentences, { batchSize: 32 });
    for (let i = 0; i < ref.sentences.length; i++) {
      const one = await emb.embed([ref.sentences[i]!]);
      expect(maxAbsDiff(one.row(0), all.row(i)), ref.sentences[i]!.slice(0, 40)).toBeLessThanOrEqual(1e-5);
    }
    const small = await emb.embed(ref.sentences, { batchSize: 3 });
    expect(maxAbsDiff(small.data, all.data)).toBeLessThanOrEqual(1e-5);
  });

  it('embeds pre-tokenized ids (Hugging Face tokenizer output) like text, padded or not', async () => {
    const texts = await emb.embed(ref.sentences);
    const seq = Math.max(...ref.token_ids.map((t) => t.length));
    const rows = ref.token_ids.length;
    const ids = new BigInt64Array(rows * seq);
    const mask = new Int32Array(rows * seq);
    ref.token_ids.forEach((t, r) => t.forEach((id, k) => ((ids[r * seq + k] = BigInt(id)), (mask[r * seq + k] = 1))));
    const m = await emb.embedTokens({ ids, attentionMask: mask, shape: [rows, seq] });
    expect(maxAbsDiff(m.data, texts.data)).toBeLessThanOrEqual(1e-5);
    // One row without a mask, as Int32Array.
    const one = await emb.embedTokens({ ids: Int32Array.from(ref.token_ids[0]!), shape: [1, ref.token_ids[0]!.length] });
    expect(maxAbsDiff(one.row(0), texts.row(0))).toBeLessThanOrEqual(1e-5);
  });

  it('truncates over-long texts (never an error) and honours maxLength', async () => {
    const long = 'word '.repeat(5000);
    const m = await emb.embed([long]);
    expect(m.rows).toBe(1);
    const short = await CandleEmbedder.load(MODEL, { maxLength: 8, threads: 2 });
    expect(short.maxLength).toBe(8);
    // With 8 tokens ([CLS] + 6 words + [SEP]) two texts that differ only after word 6 are equal.
    const [a, b] = [...(await short.embed(['one two three four five six seven', 'one two three four five six eight']))];
    expect(maxAbsDiff(a!, b!)).toBe(0);
    await short.dispose();
  });

  it('concurrent calls share the model and give the same vectors as sequential ones', async () => {
    const one = await emb.embed(ref.sentences.slice(0, 6));
    const many = await Promise.all([0, 1, 2, 3].map(() => emb.embed(ref.sentences.slice(0, 6), { batchSize: 2 })));
    for (const m of many) expect(maxAbsDiff(m.data, one.data)).toBeLessThanOrEqual(1e-5);
  });

  it('stream: one vector per text of an async source, in order, equal to embed; errors name the item', async () => {
    async function* texts() {
      for (const t of ref.sentences) {
        await new Promise((r) => setTimeout(r, 1));
        yield t;
      }
    }
    const want = await emb.embed(ref.sentences);
    const got: Float32Array[] = [];
    for await (const v of emb.stream(texts(), { batchSize: 4 })) got.push(v);
    expect(got.length).toBe(ref.sentences.length);
    got.forEach((v, i) => expect(maxAbsDiff(v, want.row(i)), ref.sentences[i]!.slice(0, 40)).toBeLessThanOrEqual(1e-5));
    // A plain array, the embedder's batchSize; nothing for an empty source.
    expect((await collect(emb.stream(ref.sentences.slice(0, 3)))).length).toBe(3);
    expect(await collect(emb.stream([]))).toEqual([]);
    // Item 5 is the second of the batch [4, 5]: named by its place in the stream.
    const bad = ['a', 'b', 'c', 'd', 'e', 42 as unknown as string, 'g'];
    const failed = collect(emb.stream(bad, { batchSize: 4 }));
    await expect(failed).rejects.toBeInstanceOf(InputDtypeError);
    await expect(failed).rejects.toThrow(/^stream item 5 is number, expected a string/);
    await expect(collect(emb.stream(['a'], { batchSize: 0 }))).rejects.toThrow(/batchSize/);
    await expect(collect(emb.stream(['a', 'b'], { signal: AbortSignal.abort() }))).rejects.toThrow(AbortedError);
  });

  it('returns an empty matrix for an empty list', async () => {
    const m = await emb.embed([]);
    expect([m.rows, m.dims, m.data.length]).toEqual([0, 384, 0]);
  });

  it('cls pooling and normalize: false change the vectors as configured', async () => {
    const raw = await CandleEmbedder.load(MODEL, { pooling: 'cls', normalize: false, threads: 2 });
    expect([raw.pooling, raw.normalize]).toEqual(['cls', false]);
    const v = (await raw.embed(['A man is eating food.'])).row(0);
    expect(Math.abs(Math.hypot(...v) - 1)).toBeGreaterThan(0.01);
    await raw.dispose();
  });
});

describe('the model cache', () => {
  it('two concurrent loads of one model load it once and share it', async () => {
    const before = cache.stats();
    const [a, b] = await Promise.all([CandleEmbedder.load(MODEL, { threads: 1 }), CandleEmbedder.load(MODEL, { threads: 1 })]);
    const after = cache.stats();
    expect(after.loads - before.loads).toBe(1);
    expect(after.hits - before.hits).toBe(1);
    const entry = after.entries.filter((e) => e.engine === 'candle' && e.key.includes('threads=1'));
    expect(entry).toHaveLength(1);
    expect(entry[0]!.holders).toBe(2);
    expect(entry[0]!.bytes).toBeGreaterThan(80e6);
    // Handles are independent: disposing one leaves the other working.
    await a.dispose();
    expect((await b.embed(['still here'])).rows).toBe(1);
    await b.dispose();
    expect(cache.stats().entries.some((e) => e.key === entry[0]!.key)).toBe(false); // freed: no budget
  });

  it('TractModel loads go through the same cache (same file and options: one load)', async () => {
    const onnx = join(root, '.cache', 'fixtures', 'add.onnx');
    const before = cache.stats();
    const [a, b] = await Promise.all([TractModel.load(onnx, { threads: 1 }), TractModel.load(onnx, { threads: 1 })]);
    const mid = cache.stats();
    expect([mid.loads - before.loads, mid.hits - before.hits]).toEqual([1, 1]);
    const entry = mid.entries.find((e) => e.engine === 'tract' && e.key.includes('add.onnx') && e.key.includes('threads=1'));
    expect(entry?.holders).toBe(2);
    // Different options are a different model; cache: false stays out of the cache.
    const c = await TractModel.load(onnx, { threads: 1, inputs: { a: { shape: [1] } } });
    const d = await TractModel.load(onnx, { threads: 1, cache: false });
    expect(cache.stats().loads - before.loads).toBe(2);
    await a.dispose();
    expect(b.runSync({ a: new Float32Array([1]), b: new Float32Array([2]) }).c!.data[0]).toBe(3);
    for (const m of [b, c, d]) await m.dispose();
    expect(cache.stats().entries.some((e) => e.key === entry!.key)).toBe(false);
  });

  it('with a budget keeps unheld models warm, and cache: false bypasses it', async () => {
    cache.setBudget(1e9);
    try {
      const a = await CandleEmbedder.load(MODEL, { threads: 1, maxLength: 64 });
      await a.dispose();
      const kept = cache.stats().entries.find((e) => e.key.includes('max_length: Some(64)'));
      expect(kept?.holders).toBe(0);
      const loads = cache.stats().loads;
      const again = await CandleEmbedder.load(MODEL, { threads: 1, maxLength: 64 });
      expect(cache.stats().loads).toBe(loads); // a hit, no load
      await again.dispose();
      const own = await CandleEmbedder.load(MODEL, { threads: 1, maxLength: 64, cache: false });
      expect(cache.stats().loads).toBe(loads);
      await own.dispose();
      cache.clear();
      expect(cache.stats().entries.some((e) => e.key === kept?.key)).toBe(false);
    } finally {
      cache.setBudget(null);
    }
  });
});

describe('bad model folders give ERR_MODEL_LOAD naming the file', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'oxinfer-bad-model-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A copy of the model folder (weights linked) with `edit` applied. */
  function variant(name: string, edit: (d: string) => void): string {
    const d = join(dir, name);
    cpSync(MODEL, d, { recursive: true, filter: (src) => !src.endsWith('model.safetensors') });
    symlinkSync(join(MODEL, 'model.safetensors'), join(d, 'model.safetensors'));
    edit(d);
    return d;
  }

  const cases: Array<[string, (d: string) => void, RegExp]> = [
    ['missing tokenizer', (d) => rmSync(join(d, 'tokenizer.json')), /tokenizer\.json is missing/],
    ['missing weights', (d) => rmSync(join(d, 'model.safetensors')), /model\.safetensors is missing/],
    ['config not JSON', (d) => writeFileSync(join(d, 'config.json'), '{ nope'), /config\.json is not a valid BERT config/],
    [
      'wrong model type',
      (d) => {
        const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
        writeFileSync(join(d, 'config.json'), JSON.stringify({ ...c, model_type: 'gpt2' }));
      },
      /config\.json: model_type 'gpt2' is not supported/,
    ],
    [
      'config that does not match the weights',
      (d) => {
        const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
        writeFileSync(join(d, 'config.json'), JSON.stringify({ ...c, hidden_size: 768 }));
      },
      /model\.safetensors: .*shape/i,
    ],
    [
      'corrupt safetensors (garbage)',
      (d) => {
        rmSync(join(d, 'model.safetensors'));
        writeFileSync(join(d, 'model.safetensors'), Buffer.from('this is not a safetensors file at all'));
      },
      /model\.safetensors/,
    ],
    [
      'truncated safetensors',
      (d) => {
        rmSync(join(d, 'model.safetensors'));
        const head = readFileSync(join(MODEL, 'model.safetensors')).subarray(0, 1 << 20);
        writeFileSync(join(d, 'model.safetensors'), head);
      },
      /model\.safetensors/,
    ],
    ['corrupt tokenizer', (d) => writeFileSync(join(d, 'tokenizer.json'), '{"model": 1}'), /tokenizer\.json is not a valid tokenizer/],
  ];

  for (const [name, edit, message] of cases) {
    it(name, async () => {
      const d = variant(name.replace(/\W+/g, '-'), edit);
      const e = await CandleEmbedder.load(d).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ModelLoadError);
      expect((e as ModelLoadError).code).toBe('ERR_MODEL_LOAD');
      expect((e as Error).message).toMatch(message);
    });
  }

  it('a folder that does not exist', async () => {
    await expect(CandleEmbedder.load(join(dir, 'nope'))).rejects.toThrow(/does not exist/);
  });

  it('maxLength beyond the model positions', async () => {
    await expect(CandleEmbedder.load(MODEL, { maxLength: 100000 })).rejects.toThrow(ModelLoadError);
  });
});

describe('bad calls get typed errors and leave the embedder usable', () => {
  const stillWorks = async () => expect((await emb.embed(['ok'])).rows).toBe(1);

  it('texts that are not strings', async () => {
    await expect(emb.embed('one' as unknown as string[])).rejects.toThrow(InputDtypeError);
    await expect(emb.embed(['a', 3 as unknown as string])).rejects.toThrow(/texts\[1\] is number/);
    await expect(emb.embed([null as unknown as string])).rejects.toThrow(InputDtypeError);
    await stillWorks();
  });

  it('bad token input', async () => {
    await expect(emb.embedTokens({ ids: new Int32Array([101, 999999, 102]), shape: [1, 3] })).rejects.toThrow(
      /ids\[1\] = 999999 is outside the vocabulary/,
    );
    await expect(emb.embedTokens({ ids: new Int32Array([101, 102]), shape: [1, 3] })).rejects.toThrow(InputShapeError);
    await expect(emb.embedTokens({ ids: new Int32Array(600), shape: [1, 600] })).rejects.toThrow(/exceeds the model's 512 positions/);
    await expect(
      emb.embedTokens({ ids: new Int32Array([101, 102]), attentionMask: new Int32Array([1, 2]), shape: [1, 2] }),
    ).rejects.toThrow(/expected 0 or 1/);
    await expect(emb.embedTokens({ ids: new Float32Array(2) as unknown as Int32Array, shape: [1, 2] })).rejects.toThrow(InputDtypeError);
    await expect(emb.embed(['x'], { batchSize: 0 })).rejects.toThrow(InputShapeError);
    await stillWorks();
  });

  it('abort: before the call, and in flight (stops between batches)', async () => {
    await expect(emb.embed(['a'], { signal: AbortSignal.abort() })).rejects.toThrow(AbortedError);
    const ac = new AbortController();
    const many = Array.from({ length: 400 }, (_, i) => `sentence number ${i} of a long job`);
    const p = emb.embed(many, { signal: ac.signal, batchSize: 1 });
    setTimeout(() => ac.abort(), 20);
    await expect(p).rejects.toThrow(AbortedError);
    await stillWorks();
  });

  it('devices: a GPU this build lacks is ERR_DEVICE_UNAVAILABLE with the reason; auto falls back to cpu', async () => {
    // No GPU here: 'cuda' says what was tried — the local CUDA build is either absent or, when
    // scripts/build-cuda.sh made one, fails to load for want of libcuda.
    const e = await CandleEmbedder.load(MODEL, { device: 'cuda' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DeviceUnavailableError);
    expect((e as Error).message).toMatch(/the CUDA build of oxinfer did not load; tried .*oxinfer\.linux-x64-gnu\.cuda\.node \((not found|.*lib\w+\.so[^)]*)\)/);
    await expect(CandleEmbedder.load(MODEL, { device: 'tpu' as 'cpu' })).rejects.toThrow(DeviceUnavailableError);
    const auto = await CandleEmbedder.load(MODEL, { device: 'auto', threads: 2 });
    expect(auto.device).toBe('cpu');
    await auto.dispose();
  });

  it('OXINFER_CUDA_NATIVE_PATH at an addon without CUDA: refused with the reason', () => {
    const script = `require('./dist/cjs/index.js').CandleEmbedder.load(${JSON.stringify(MODEL)}, { device: 'cuda' })
      .then(() => console.log('loaded'), (e) => console.log(e.code + ' ' + e.message))`;
    const r = spawnSync(process.execPath, ['-e', script], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, OXINFER_CUDA_NATIVE_PATH: join(root, 'oxinfer.linux-x64-gnu.node') },
    });
    expect(r.stdout).toMatch(/^ERR_DEVICE_UNAVAILABLE .*OXINFER_CUDA_NATIVE_PATH=.* \(not a CUDA build\)/);
  });

  it('disposed', async () => {
    const e = await CandleEmbedder.load(MODEL, { threads: 2, cache: false });
    await e.dispose();
    await expect(e.embed(['x'])).rejects.toThrow(DisposedError);
  });
});
