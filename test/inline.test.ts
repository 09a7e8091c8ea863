import { describe, expect, it } from 'vitest';
import { ModelLoadError, TractModel } from '../src/index';
import { InlinePolicy, shapeKey } from '../src/inline';
import { fixture } from './helpers';

describe('InlinePolicy', () => {
  it('sends a shape it has not measured to the pool', () => {
    expect(new InlinePolicy(20).place('1;')).toBe('pool');
  });

  it('tries a shape inline once its pool run came back fast, and keeps it there while cheap', () => {
    const p = new InlinePolicy(20);
    p.pooledRan('1;', 30);
    expect(p.place('1;')).toBe('inline');
    p.inlineRan('1;', 400); // the first inline run is a warm-up, not counted
    expect(p.place('1;')).toBe('inline');
    p.inlineRan('1;', 6);
    expect(p.place('1;')).toBe('inline');
    // One slow run (a GC pause, say) does not move it: the median of recent runs decides.
    p.inlineRan('1;', 900);
    p.inlineRan('1;', 7);
    expect(p.place('1;')).toBe('inline');
  });

  it('keeps on the pool a shape whose pool run was slow, or whose inline run cost too much', () => {
    const p = new InlinePolicy(20);
    p.pooledRan('big;', 5000);
    expect(p.place('big;')).toBe('pool');
    p.pooledRan('mid;', 600);
    expect(p.place('mid;')).toBe('inline'); // probed...
    p.inlineRan('mid;', 45); // (warm-up)
    for (let i = 0; i < 2; i++) {
      p.inlineRan('mid;', 45);
      expect(p.place('mid;')).toBe('inline'); // one or two samples do not decide
    }
    p.inlineRan('mid;', 45);
    expect(p.place('mid;')).toBe('pool'); // ...three measured above the limit do
    for (let i = 0; i < 63; i++) p.pooledRan('mid;', 100);
    expect(p.place('mid;')).toBe('pool');
    p.pooledRan('mid;', 100);
    expect(p.place('mid;')).toBe('inline'); // measured afresh after 64 pool runs
    p.inlineRan('mid;', 8);
    p.inlineRan('mid;', 9);
    p.inlineRan('mid;', 7);
    expect(p.place('mid;')).toBe('inline'); // it got cheaper: it stays inline
    p.pooledRan('slow;', 200);
    p.inlineRan('slow;', 10); // (warm-up)
    for (let i = 0; i < 3; i++) p.inlineRan('slow;', 40);
    expect(p.place('slow;')).toBe('pool');
    for (let i = 0; i < 64; i++) p.pooledRan('slow;', 5000); // the pool got slow too
    expect(p.place('slow;')).toBe('pool'); // no probe when the round trip was over 1 ms
  });

  it('tells shapes apart', () => {
    expect(shapeKey([{ shape: [1, 2] }, { shape: [3] }])).not.toBe(shapeKey([{ shape: [1] }, { shape: [2, 3] }]));
  });
});

describe('TractModel: inline runs of tiny models', () => {
  const feeds = { a: new Float32Array([1.5]), b: new Float32Array([2.25]) };

  /** Whether `run` settled before the event loop got to a setImmediate queued at its start. */
  async function settledInline(run: () => Promise<unknown>): Promise<boolean> {
    let turned = false;
    const t = setImmediate(() => { turned = true; });
    await run();
    clearImmediate(t);
    return !turned;
  }

  it('runs a microsecond-scale model inline after measuring it, with the same results', async () => {
    // The limit is well above add.onnx's few µs so that a busy test machine (other test files
    // run beside this one) cannot push the measured median over it; the default's fit is the
    // benchmark's business. A pool round trip over 1 ms defers the probe, so allow a few.
    const m = await TractModel.load(fixture('add.onnx'), { cache: false, inlineUnderUs: 500 });
    let pooled = 0;
    while (pooled < 50 && !(await settledInline(() => m.run(feeds)))) pooled++;
    expect(pooled).toBeLessThan(50);
    expect(pooled).toBeGreaterThan(0); // the first run of a shape always goes to the pool
    for (let i = 0; i < 5; i++) expect(await settledInline(() => m.run(feeds))).toBe(true);
    expect(Array.from((await m.run(feeds)).c!.data as Float32Array)).toEqual([3.75]);
  });

  it('never runs inline with inlineUnderUs: 0, nor a model that takes milliseconds', async () => {
    const off = await TractModel.load(fixture('add.onnx'), { cache: false, inlineUnderUs: 0 });
    const cnn = await TractModel.load(fixture('cnn.onnx'), { cache: false, threads: 1 });
    const big = { image: { data: new Float32Array(64 * 3 * 32 * 32), shape: [64, 3, 32, 32] } };
    for (let i = 0; i < 3; i++) {
      await off.run(feeds);
      await cnn.run(big);
    }
    expect(await settledInline(() => cnn.run(big))).toBe(false);
    let inline = 0;
    for (let i = 0; i < 20; i++) if (await settledInline(() => off.run(feeds))) inline++;
    expect(inline).toBe(0);
  });

  it('an inline run that fails rejects with the typed error, and the model keeps working', async () => {
    const m = await TractModel.load(fixture('add.onnx'), { cache: false });
    for (let i = 0; i < 4; i++) await m.run(feeds);
    const bad = m.run({ a: { data: new Float32Array(2), shape: [1] }, b: feeds.b });
    await expect(bad).rejects.toMatchObject({ code: 'ERR_INPUT_SHAPE' });
    expect(Array.from((await m.run(feeds)).c!.data as Float32Array)).toEqual([3.75]);
  });

  it('an aborted signal still rejects before any work', async () => {
    const m = await TractModel.load(fixture('add.onnx'), { cache: false });
    for (let i = 0; i < 3; i++) await m.run(feeds);
    const ac = new AbortController();
    ac.abort();
    await expect(m.run(feeds, { signal: ac.signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });

  it('keeps session steps in call order when some run inline', async () => {
    // A running sum: out = in + state, state carried. Emulated with add.onnx: b fed back from c.
    const m = await TractModel.load(fixture('add.onnx'), { cache: false });
    const s = m.session({ carry: { c: 'b' } });
    const one = new Float32Array([1]);
    const sums: number[] = [];
    // Sequential steps first (these get measured and go inline), then a burst of concurrent ones.
    for (let i = 0; i < 4; i++) sums.push(((await s.run({ a: one })).c!.data as Float32Array)[0]!);
    const burst = await Promise.all(Array.from({ length: 8 }, () => s.run({ a: one })));
    for (const o of burst) sums.push((o.c!.data as Float32Array)[0]!);
    expect(sums).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('lets the event loop turn during a long loop of awaited inline runs', async () => {
    // Awaiting an inline run continues in a microtask of the same turn: without the per-turn
    // budget this loop would hold the event loop for all of its 150 ms.
    const m = await TractModel.load(fixture('add.onnx'), { cache: false, inlineUnderUs: 500 });
    for (let i = 0; i < 20; i++) await m.run(feeds); // measured, then inline
    let turns = 0;
    let last = performance.now();
    let longest = 0;
    let on = true;
    const tick = () => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
      turns++;
      if (on) setImmediate(tick);
    };
    setImmediate(tick);
    let runs = 0;
    const end = performance.now() + 150;
    while (performance.now() < end) {
      expect((await m.run(feeds)).c!.data[0]).toBe(3.75);
      runs++;
    }
    on = false;
    expect(turns).toBeGreaterThan(10);
    expect(longest).toBeLessThan(50); // ms; the budget is 1 ms per turn
    expect(runs).toBeGreaterThan(3 * turns); // still many runs per turn: most stayed inline
  });

  it('finishes inline runs that wait for the next turn when the model is disposed, and honours abort', async () => {
    const m = await TractModel.load(fixture('add.onnx'), { cache: false, inlineUnderUs: 500 });
    for (let i = 0; i < 20; i++) await m.run(feeds);
    // One synchronous burst: the first runs go inline until the turn's budget is spent, the
    // rest wait for the next turn.
    const burst = Array.from({ length: 3000 }, () => m.run(feeds));
    const ac = new AbortController();
    const aborted = m.run(feeds, { signal: ac.signal });
    ac.abort();
    const disposed = m.dispose();
    await expect(aborted).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    const outs = await Promise.all(burst);
    await disposed;
    expect(outs.every((o) => o.c!.data[0] === 3.75)).toBe(true);
    await expect(m.run(feeds)).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
  });

  it('refuses a bad inlineUnderUs', async () => {
    await expect(TractModel.load(fixture('add.onnx'), { inlineUnderUs: -1 })).rejects.toBeInstanceOf(ModelLoadError);
    await expect(TractModel.load(fixture('add.onnx'), { inlineUnderUs: Number.NaN })).rejects.toBeInstanceOf(ModelLoadError);
  });
});
