// EmbedBatcher: concurrent embed calls joined into one engine call, each caller getting its own
// rows (checked against each text embedded alone), aborts, backpressure, close, failures.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AbortedError,
  CandleEmbedder,
  DisposedError,
  EmbedBatcher,
  EngineError,
  InputDtypeError,
  QueueFullError,
} from '../src/index';

const MODEL = join(__dirname, '..', '.cache', 'models', 'all-MiniLM-L6-v2');

let emb: CandleEmbedder;
beforeAll(async () => {
  emb = await CandleEmbedder.load(MODEL, { threads: 2, cache: false });
});
afterAll(async () => {
  await emb.dispose();
});

/** Counts the texts of each engine call; `fail` makes the next joined call of several fail. */
function counting(e: CandleEmbedder): { calls: number[]; failNext: boolean } {
  const seen = { calls: [] as number[], failNext: false };
  const embed = e.embed.bind(e);
  e.embed = (texts, options) => {
    seen.calls.push(texts.length);
    if (seen.failNext && texts.length > 1) {
      seen.failNext = false;
      return Promise.reject(new EngineError('injected failure of a joined call'));
    }
    return embed(texts, options);
  };
  return seen;
}

const words = 'a cat sat on the warm mat while two dogs ran across the wide green field at noon'.split(' ');
const text = (i: number) => words.slice(0, 3 + ((i * 5) % 14)).join(' ') + ` #${i}`;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('EmbedBatcher', () => {
  it('joins concurrent calls into calls of at most maxBatch texts; each caller gets its own rows', async () => {
    const e = await CandleEmbedder.load(MODEL, { threads: 2, cache: false });
    const seen = counting(e);
    const batcher = new EmbedBatcher(e, { maxBatch: 8, maxDelayMs: 20 });
    // Callers of 1, 2 and 3 texts: 12 texts in all.
    const requests = [[0], [1, 2], [3, 4, 5], [6], [7, 8], [9, 10, 11]].map((ids) => ids.map(text));
    const results = await Promise.all(requests.map((r) => batcher.embed(r)));
    expect(seen.calls.reduce((a, b) => a + b, 0)).toBe(12);
    expect(seen.calls.length).toBeLessThan(requests.length);
    for (const n of seen.calls) expect(n).toBeLessThanOrEqual(8);
    for (let i = 0; i < requests.length; i++) {
      expect([results[i]!.rows, results[i]!.dims]).toEqual([requests[i]!.length, 384]);
      for (let k = 0; k < requests[i]!.length; k++) {
        const alone = await emb.embed([requests[i]![k]!]);
        expect(maxAbsDiff(results[i]!.row(k), alone.row(0)), requests[i]![k]).toBeLessThanOrEqual(1e-5);
      }
    }
    await batcher.close();
    await e.dispose();
  });

  it('aborts a queued request alone; refuses bad texts at the call', async () => {
    const batcher = new EmbedBatcher(emb, { maxBatch: 64, maxDelayMs: 20 });
    const abort = new AbortController();
    const doomed = batcher.embed([text(1)], { signal: abort.signal });
    const kept = batcher.embed([text(2)]);
    abort.abort();
    await expect(doomed).rejects.toBeInstanceOf(AbortedError);
    expect((await kept).rows).toBe(1);
    await expect(batcher.embed([text(3)], { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await expect(batcher.embed([text(1), 7 as unknown as string])).rejects.toBeInstanceOf(InputDtypeError);
    await expect(batcher.embed('not an array' as unknown as string[])).rejects.toThrow(/array of strings/);
    await batcher.close();
  });

  it('drops a joined call once every caller in it has aborted, not before', async () => {
    const e = await CandleEmbedder.load(MODEL, { threads: 1, cache: false });
    const signals: Array<AbortSignal | undefined> = [];
    const embed = e.embed.bind(e);
    e.embed = (texts, options) => {
      signals.push(options?.signal);
      return embed(texts, options);
    };
    const batcher = new EmbedBatcher(e, { maxBatch: 2, maxDelayMs: 50 });
    const [a, b] = [new AbortController(), new AbortController()];
    const calls = [batcher.embed([text(1)], { signal: a.signal }), batcher.embed([text(2)], { signal: b.signal })];
    expect(signals.length).toBe(1); // two texts fill maxBatch: dispatched at once
    a.abort();
    expect(signals[0]!.aborted).toBe(false); // one caller still waits
    b.abort();
    expect(signals[0]!.aborted).toBe(true);
    for (const c of calls) await expect(c).rejects.toBeInstanceOf(AbortedError);
    // A caller without a signal keeps its call's signal unaborted; the batcher still works.
    const c = new AbortController();
    const mixed = [batcher.embed([text(3)], { signal: c.signal }), batcher.embed([text(4)])];
    c.abort();
    expect(signals[1]!.aborted).toBe(false);
    await expect(mixed[0]).rejects.toBeInstanceOf(AbortedError);
    expect((await mixed[1]!).rows).toBe(1);
    await batcher.close();
    await e.dispose();
  });

  it('rejects with ERR_QUEUE_FULL beyond maxQueue, and refuses work after close()', async () => {
    const batcher = new EmbedBatcher(emb, { maxBatch: 64, maxDelayMs: 50, maxQueue: 2 });
    const a = batcher.embed([text(1)]);
    const b = batcher.embed([text(2)]);
    await expect(batcher.embed([text(3)])).rejects.toBeInstanceOf(QueueFullError);
    expect(batcher.pending).toBe(2);
    await batcher.close();
    expect([(await a).rows, (await b).rows]).toEqual([1, 1]);
    await expect(batcher.embed([text(4)])).rejects.toBeInstanceOf(DisposedError);
  });

  it('when a joined call fails, each caller runs alone and still gets its rows', async () => {
    const e = await CandleEmbedder.load(MODEL, { threads: 2, cache: false });
    const seen = counting(e);
    seen.failNext = true;
    const batcher = new EmbedBatcher(e, { maxBatch: 8, maxDelayMs: 20 });
    const results = await Promise.all([batcher.embed([text(1)]), batcher.embed([text(2), text(3)])]);
    // The joined call of 3 failed, then each request alone: 1 text, then 2.
    expect(seen.calls[0]).toBe(3);
    expect([...seen.calls.slice(1)].sort()).toEqual([1, 2]);
    const alone = await emb.embed([text(3)]);
    expect(maxAbsDiff(results[1]!.row(1), alone.row(0))).toBeLessThanOrEqual(1e-5);
    await batcher.close();
    await e.dispose();
  });

  it('a disposed embedder fails every caller with ERR_DISPOSED; options are checked', async () => {
    const e = await CandleEmbedder.load(MODEL, { threads: 1, cache: false });
    const batcher = new EmbedBatcher(e, { maxDelayMs: 5 });
    await e.dispose();
    const calls = [batcher.embed([text(1)]), batcher.embed([text(2)])];
    for (const c of calls) await expect(c).rejects.toBeInstanceOf(DisposedError);
    expect(() => new EmbedBatcher(emb, { maxBatch: 0 })).toThrow(/EmbedBatcher option maxBatch/);
    expect(() => new EmbedBatcher(emb, { maxDelayMs: -1 })).toThrow(RangeError);
  });
});
