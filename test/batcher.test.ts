import { describe, expect, it } from 'vitest';
import { AbortedError, Batcher, DisposedError, InputShapeError, QueueFullError, TractModel, type Feeds } from '../src/index';
import { fixture, maxAbsDiff, randomF32, rng } from './helpers';

/** Counts the engine calls a model receives. */
function counting(model: TractModel): { calls: number[] } {
  const seen = { calls: [] as number[] };
  const runBatch = model.runBatch.bind(model);
  model.runBatch = (requests, options) => {
    seen.calls.push(requests.length);
    return runBatch(requests, options);
  };
  return seen;
}

const image = (seed: number): Feeds => ({ image: { data: randomF32(3 * 32 * 32, seed), shape: [1, 3, 32, 32] } });

describe('Batcher', () => {
  it('coalesces concurrent requests into batches of at most maxBatch, each caller getting its rows', async () => {
    const model = await TractModel.load(fixture('cnn.onnx'));
    const seen = counting(model);
    const batcher = new Batcher(model, { maxBatch: 8, maxDelayMs: 20 });
    const requests = Array.from({ length: 16 }, (_, i) => image(i));
    const results = await Promise.all(requests.map((r) => batcher.run(r)));
    expect(seen.calls).toEqual([8, 8]);
    for (let i = 0; i < 16; i++) {
      const alone = await model.run(requests[i]!);
      expect(results[i]!.probs!.shape).toEqual([1, 10]);
      expect(maxAbsDiff(results[i]!.probs!.data as Float32Array, alone.probs!.data as Float32Array)).toBeLessThan(1e-5);
    }
  });

  it('runs a lone request after maxDelayMs', async () => {
    const model = await TractModel.load(fixture('cnn.onnx'));
    const seen = counting(model);
    const batcher = new Batcher(model, { maxBatch: 64, maxDelayMs: 5 });
    const out = await batcher.run(image(1));
    expect(out.probs!.shape).toEqual([1, 10]);
    expect(seen.calls).toEqual([1]);
  });

  it('pads variable-length sequences and cuts outputs back to each request', async () => {
    const model = await TractModel.load(fixture('encoder.onnx'));
    const seen = counting(model);
    const batcher = new Batcher(model, { maxBatch: 8, maxDelayMs: 20, pad: { input_ids: 0n, attention_mask: 0n, token_type_ids: 0n } });
    const r = rng(5);
    const request = (s: number): Feeds => {
      const ids = BigInt64Array.from({ length: s }, () => BigInt(1 + Math.floor(r() * 900)));
      return {
        input_ids: { data: ids, shape: [1, s] },
        attention_mask: { data: new BigInt64Array(s).fill(1n), shape: [1, s] },
        token_type_ids: { data: new BigInt64Array(s), shape: [1, s] },
      };
    };
    const served = async (lengths: number[]) => {
      const requests = lengths.map(request);
      const results = await Promise.all(requests.map((q) => batcher.run(q)));
      for (let i = 0; i < requests.length; i++) {
        const alone = await model.run(requests[i]!);
        const got = results[i]!.last_hidden_state!;
        expect(got.shape).toEqual(alone.last_hidden_state!.shape);
        expect(maxAbsDiff(got.data as Float32Array, alone.last_hidden_state!.data as Float32Array)).toBeLessThan(1e-4);
      }
    };
    // Lengths within 1/16 of the longest share one padded call.
    await served([64, 62, 64, 63]);
    expect(seen.calls).toEqual([4]);
    // Short and long requests go to separate calls (side by side), each padded only to its
    // group's longest: 3 and 5 tokens are not stretched to 64.
    seen.calls.length = 0;
    await served([3, 64, 5, 60]);
    expect(seen.calls).toEqual([2, 2]);
  });

  it('drops a request aborted while queued, and never delivers to an aborted caller', async () => {
    const model = await TractModel.load(fixture('cnn.onnx'));
    const seen = counting(model);
    const batcher = new Batcher(model, { maxBatch: 8, maxDelayMs: 30 });
    const ac = new AbortController();
    const doomed = batcher.run(image(1), { signal: ac.signal });
    const kept = batcher.run(image(2));
    ac.abort();
    await expect(doomed).rejects.toBeInstanceOf(AbortedError);
    expect((await kept).probs!.shape).toEqual([1, 10]);
    expect(seen.calls).toEqual([1]);
    const pre = new AbortController();
    pre.abort();
    await expect(batcher.run(image(3), { signal: pre.signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });

  it('passes the engine call a signal that aborts once all of its callers have', async () => {
    const model = await TractModel.load(fixture('cnn.onnx'));
    const signals: Array<AbortSignal | undefined> = [];
    const runBatch = model.runBatch.bind(model);
    model.runBatch = (requests, options) => {
      signals.push(options?.signal);
      return runBatch(requests, options);
    };
    const batcher = new Batcher(model, { maxBatch: 2, maxDelayMs: 30 });
    const [a, b] = [new AbortController(), new AbortController()];
    const calls = [batcher.run(image(1), { signal: a.signal }), batcher.run(image(2), { signal: b.signal })];
    expect(signals.length).toBe(1);
    a.abort();
    expect(signals[0]!.aborted).toBe(false);
    b.abort();
    expect(signals[0]!.aborted).toBe(true);
    for (const c of calls) await expect(c).rejects.toBeInstanceOf(AbortedError);
    expect((await batcher.run(image(3))).probs!.shape).toEqual([1, 10]);
    await batcher.close();
  });

  it('rejects with ERR_QUEUE_FULL beyond maxQueue, and refuses work after close()', async () => {
    const model = await TractModel.load(fixture('cnn.onnx'));
    const batcher = new Batcher(model, { maxBatch: 64, maxDelayMs: 50, maxQueue: 2 });
    const a = batcher.run(image(1));
    const b = batcher.run(image(2));
    await expect(batcher.run(image(3))).rejects.toBeInstanceOf(QueueFullError);
    await batcher.close();
    expect((await a).probs!.shape).toEqual([1, 10]);
    expect((await b).probs!.shape).toEqual([1, 10]);
    await expect(batcher.run(image(4))).rejects.toBeInstanceOf(DisposedError);
  });

  it('passes a lone request its engine error, and the model stays usable', async () => {
    const model = await TractModel.load(fixture('cnn.onnx'));
    const batcher = new Batcher(model, { maxBatch: 4, maxDelayMs: 10 });
    const bad = { image: { data: new Float32Array(3 * 32 * 31), shape: [1, 3, 32, 31] } };
    await expect(batcher.run(bad)).rejects.toMatchObject({ code: 'ERR_INPUT_SHAPE' });
    expect((await batcher.run(image(1))).probs!.shape).toEqual([1, 10]);
  });

  it('fails only the bad request of a batch: the callers stacked with it get their rows', async () => {
    const model = await TractModel.load(fixture('cnn.onnx'));
    const seen = counting(model);
    const batcher = new Batcher(model, { maxBatch: 4, maxDelayMs: 20 });
    // Same shape and array kind as the good ones, so it stacks with them; its data is short.
    const bad = { image: { data: new Float32Array(5), shape: [1, 3, 32, 32] } };
    const runs = [batcher.run(image(1)), batcher.run(bad), batcher.run(image(2))];
    const [a, b, c] = await Promise.allSettled(runs);
    expect(b).toMatchObject({ status: 'rejected', reason: { code: 'ERR_INPUT_SHAPE' } });
    expect((b as PromiseRejectedResult).reason.message).toMatch(/image/);
    for (const [settled, seed] of [[a, 1], [c, 2]] as const) {
      expect(settled.status).toBe('fulfilled');
      const got = (settled as PromiseFulfilledResult<Awaited<(typeof runs)[0]>>).value.probs!.data as Float32Array;
      const alone = (await model.run(image(seed))).probs!.data as Float32Array;
      expect(maxAbsDiff(got, alone)).toBeLessThan(1e-5);
    }
    // The stacked call failed; then each request ran on its own.
    expect(seen.calls.slice(0, 4)).toEqual([3, 1, 1, 1]);
  });

  it('refuses invalid options with a RangeError naming the option', () => {
    const model = {} as TractModel;
    expect(() => new Batcher(model, { maxBatch: 0 })).toThrow(/maxBatch/);
    expect(() => new Batcher(model, { maxQueue: 1.5 })).toThrow(/maxQueue/);
    expect(() => new Batcher(model, { maxDelayMs: Number.NaN })).toThrow(/maxDelayMs/);
    expect(() => new Batcher(model, { maxDelayMs: -1 })).toThrow(RangeError);
  });
});

describe('TractModel.stream', () => {
  it('yields every item in order, batched, matching one-by-one runs', async () => {
    const model = await TractModel.load(fixture('cnn.onnx'));
    const seen = counting(model);
    async function* source() {
      for (let i = 0; i < 7; i++) yield image(i);
    }
    const outs: Float32Array[] = [];
    for await (const o of model.stream(source(), { batchSize: 3 })) outs.push(o.probs!.data as Float32Array);
    expect(seen.calls).toEqual([3, 3, 1]);
    expect(outs).toHaveLength(7);
    for (let i = 0; i < 7; i++) {
      const alone = (await model.run(image(i))).probs!.data as Float32Array;
      expect(maxAbsDiff(outs[i]!, alone)).toBeLessThan(1e-5);
    }
  });

  it('surfaces a failing item as a typed error naming the item', async () => {
    const model = await TractModel.load(fixture('cnn.onnx'));
    const bad = { image: { data: new Float32Array(5), shape: [1, 3, 32, 32] } };
    const run = async (items: Feeds[], batchSize: number) => {
      const got: number[] = [];
      for await (const o of model.stream(items, { batchSize })) got.push(o.probs!.shape[0]!);
      return got;
    };
    await expect(run([image(1), bad], 1)).rejects.toMatchObject({ code: 'ERR_INPUT_SHAPE' });
    // Item 3 is the second of the batch [2, 3]: the error names the stream's item, not the
    // batch's request 1.
    const failed = run([image(0), image(1), image(2), bad, image(4)], 2);
    await expect(failed).rejects.toBeInstanceOf(InputShapeError);
    await expect(failed).rejects.toThrow(/^stream item 3: input 'image'/);
  });
});
