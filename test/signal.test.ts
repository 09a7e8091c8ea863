// One AbortSignal shared by many calls (a service's shutdown signal, a deadline shared by a
// request's sub-calls): no leak warning, no per-call growth, the user's own `onabort` kept, and
// aborting it rejects every call in flight while the model stays usable. Plus the native cancel
// token: a task whose token is set before a pool thread takes it does no work, and a tract run
// whose token is set while it runs stops at its next op.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fromNative } from '../src/errors';
import { Batcher, CandleEmbedder, EmbedBatcher, TractModel } from '../src/index';
import { native } from '../src/native';
import { packFeeds } from '../src/packed';
import { tokenFor, watch } from '../src/signal';
import { toNativeFeed } from '../src/tensor';
import { fixture } from './helpers';

const MODEL = join(__dirname, '..', '.cache', 'models', 'all-MiniLM-L6-v2');
const add = (x: number) => ({ a: new Float32Array([x]), b: new Float32Array([1]) });
const addShaped = (x: number) => ({ a: { data: new Float32Array([x]), shape: [1] }, b: { data: new Float32Array([1]), shape: [1] } });

let warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);
beforeEach(() => {
  warnings = [];
  process.on('warning', onWarning);
});
afterEach(() => {
  process.off('warning', onWarning);
});
/** Warnings are emitted on the next tick: let them arrive before looking. */
const settled = () => new Promise((r) => setImmediate(r));

describe('one signal shared by many calls', () => {
  it('64 concurrent runs, runBatch calls and Batcher requests on one signal: right results, no leak warning', async () => {
    // With one 'abort' listener per call, Node printed "MaxListenersExceededWarning: Possible
    // EventTarget memory leak detected. 11 abort listeners added to [AbortSignal]".
    const m = await TractModel.load(fixture('add.onnx'), { inlineUnderUs: 0 });
    const { signal } = new AbortController();
    const runs = await Promise.all(Array.from({ length: 64 }, (_, i) => m.run(add(i), { signal })));
    runs.forEach((out, i) => expect((out.c!.data as Float32Array)[0]).toBe(i + 1));
    const batches = await Promise.all(Array.from({ length: 64 }, (_, i) => m.runBatch([add(i)], { signal })));
    batches.forEach((outs, i) => expect((outs[0]!.c!.data as Float32Array)[0]).toBe(i + 1));
    const batcher = new Batcher(m, { maxBatch: 16, maxDelayMs: 1 });
    const viaBatcher = await Promise.all(Array.from({ length: 64 }, (_, i) => batcher.run(addShaped(i), { signal })));
    viaBatcher.forEach((out, i) => expect((out.c!.data as Float32Array)[0]).toBe(i + 1));
    await batcher.close();
    await settled();
    expect(warnings.map((w) => w.message)).toEqual([]);
  });

  it('64 concurrent embed and EmbedBatcher calls on one signal: no leak warning', async () => {
    const emb = await CandleEmbedder.load(MODEL, { threads: 1, cache: false });
    const { signal } = new AbortController();
    const alone = await emb.embed(['a shared signal']);
    const outs = await Promise.all(Array.from({ length: 16 }, () => emb.embed(['a shared signal'], { signal })));
    const batcher = new EmbedBatcher(emb, { maxBatch: 64 });
    const joined = await Promise.all(Array.from({ length: 64 }, () => batcher.embed(['a shared signal'], { signal })));
    for (const e of [...outs, ...joined]) expect(Math.max(...e.row(0).map((v, i) => Math.abs(v - alone.row(0)[i]!)))).toBeLessThan(1e-5);
    await batcher.close();
    await settled();
    expect(warnings.map((w) => w.message)).toEqual([]);
  }, 60_000);

  it("keeps the signal's own onabort handler (napi-rs's AbortSignal argument replaced it)", async () => {
    const m = await TractModel.load(fixture('add.onnx'), { inlineUnderUs: 0 });
    const ac = new AbortController();
    let called = 0;
    ac.signal.onabort = () => called++;
    await m.run(add(1), { signal: ac.signal });
    await m.runBatch([add(1)], { signal: ac.signal });
    ac.abort();
    expect(called).toBe(1);
  });

  it('aborting the shared signal rejects every call in flight with ERR_ABORTED; the model stays usable', async () => {
    const m = await TractModel.load(fixture('cnn.onnx'), { threads: 1 });
    const ac = new AbortController();
    const image = { image: { data: new Float32Array(64 * 3 * 32 * 32).fill(0.5), shape: [64, 3, 32, 32] } };
    // Earlier calls on the same signal, already done: napi-rs stopped cancelling at the first.
    for (let i = 0; i < 3; i++) await m.run(image, { signal: ac.signal });
    const calls = Array.from({ length: 12 }, () => m.run(image, { signal: ac.signal }));
    ac.abort(new Error('shutting down'));
    const results = await Promise.allSettled(calls);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_ABORTED', message: expect.stringContaining('shutting down') });
    }
    const out = await m.run(image);
    expect(out.probs!.shape).toEqual([64, 10]);
  });

  it('a native task whose token is set before it starts does no work: ERR_ABORTED, and the next task runs', async () => {
    const binding = native();
    const n = await binding.loadTractModel(fixture('add.onnx'), {}, undefined);
    const inputs = n.inputs.map((i) => ({ name: i.name, dtype: i.dtype as 'float32', shape: i.shape }));
    // Good feeds: a task that started would deliver 3.
    const [data, meta] = packFeeds(
      [
        { name: 'a', dtype: 'float32', shape: [1], data: new Float32Array([1]) },
        { name: 'b', dtype: 'float32', shape: [1], data: new Float32Array([2]) },
      ],
      inputs,
    );
    const token = new binding.NativeCancelToken();
    token.cancel();
    await expect(n.run(data, meta, token).catch((e: unknown) => Promise.reject(fromNative(e)))).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    const request = [toNativeFeed('a', { data: new Float32Array([1]), shape: [1] }, undefined), toNativeFeed('b', { data: new Float32Array([2]), shape: [1] }, undefined)];
    await expect(n.runBatch([request], token).catch((e: unknown) => Promise.reject(fromNative(e)))).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    const loaded = binding.loadTractModel(fixture('add.onnx'), {}, token);
    await expect(loaded.catch((e: unknown) => Promise.reject(fromNative(e)))).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    const fresh = new binding.NativeCancelToken();
    const [out] = await n.run(data, meta, fresh);
    expect(out).toEqual(new Float32Array([3]));
    const [[batched]] = await n.runBatch([request], fresh);
    expect(batched!.data).toEqual(new Float32Array([3]));
  });

  it('a native run whose token is set while it runs stops at its next op with ERR_ABORTED', async () => {
    const binding = native();
    // 4 sentences of 128 tokens on one thread: ~100 ms of ops; the token is set ~10 ms in.
    const n = await binding.loadTractModel(fixture('encoder-minilm.onnx'), { threads: 1 }, undefined);
    const inputs = n.inputs.map((i) => ({ name: i.name, dtype: i.dtype as 'int64', shape: i.shape }));
    const ids = BigInt64Array.from({ length: 4 * 128 }, (_, i) => BigInt(1 + ((i * 7919) % 30000)));
    const [data, meta] = packFeeds(
      [
        { name: 'input_ids', dtype: 'int64', shape: [4, 128], data: ids },
        { name: 'attention_mask', dtype: 'int64', shape: [4, 128], data: new BigInt64Array(4 * 128).fill(1n) },
        { name: 'token_type_ids', dtype: 'int64', shape: [4, 128], data: new BigInt64Array(4 * 128) },
      ],
      inputs,
    );
    const token = new binding.NativeCancelToken();
    const run = n.run(data, meta, token).catch((e: unknown) => Promise.reject(fromNative(e)));
    setTimeout(() => token.cancel(), 10);
    await expect(run).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    // The model runs on.
    await expect(n.run(data, meta, undefined)).resolves.toHaveLength(2);
  });

  it('a native embed whose token is set while its one batch runs stops before the next layer', async () => {
    const binding = native();
    const n = await binding.loadCandleEmbedder(MODEL, { threads: 1, cache: false }, undefined);
    // One batch of 16 texts of ~120 tokens on one thread: ~0.5 s of layers; the token is set
    // ~20 ms in. Checked only between batches, this call would run to the end and resolve.
    const texts = Array.from({ length: 16 }, (_, i) => `text ${i}: ` + 'the quick brown fox jumps over the lazy dog '.repeat(12));
    const token = new binding.NativeCancelToken();
    const call = n.embed(texts, 16, token).catch((e: unknown) => Promise.reject(fromNative(e)));
    setTimeout(() => token.cancel(), 20);
    await expect(call).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    const ok = await n.embed(texts.slice(0, 2), 16, undefined);
    expect(ok.rows).toBe(2);
  }, 30_000);
});

describe('signal helpers', () => {
  it('watch: one listener per signal, removed with the last watcher; each watcher called once on abort', () => {
    const ac = new AbortController();
    const seen: number[] = [];
    const stops = [1, 2, 3].map((k) => watch(ac.signal, () => seen.push(k)));
    stops[1]!();
    stops[1]!(); // twice is harmless
    ac.abort();
    expect(seen).toEqual([1, 3]);
    // Watching an aborted signal calls at once.
    watch(ac.signal, () => seen.push(4));
    expect(seen).toEqual([1, 3, 4]);
    // Once every watcher has stopped, an abort calls none.
    const other = new AbortController();
    const stop = watch(other.signal, () => seen.push(5));
    stop();
    other.abort();
    expect(seen).toEqual([1, 3, 4]);
  });

  it('tokenFor: one token per signal and addon, set when the signal aborts; none without a signal', () => {
    const { NativeCancelToken } = native();
    const cancelled: boolean[] = [];
    class Probe {
      cancel() {
        cancelled.push(true);
      }
    }
    const ac = new AbortController();
    const t = tokenFor(ac.signal, Probe);
    expect(tokenFor(ac.signal, Probe)).toBe(t);
    expect(tokenFor(ac.signal, NativeCancelToken)).not.toBe(t);
    expect(tokenFor(undefined, Probe)).toBeUndefined();
    ac.abort();
    expect(cancelled).toEqual([true]);
  });
});
