import { describe, expect, it } from 'vitest';
import { TractModel } from '../src/index';
import { toNativeFeeds } from '../src/tensor';
import { fixture } from './helpers';

describe('inputs are not copied on the JS side', () => {
  it('the typed array handed to the native layer is the caller’s own object', async () => {
    const m = await TractModel.load(fixture('cnn.onnx'));
    const data = new Float32Array(3 * 32 * 32);
    const [feed] = toNativeFeeds({ image: { data, shape: [1, 3, 32, 32] } }, m.inputs);
    expect(feed!.data).toBe(data);
    // A view at an offset is passed as that same view, not copied to a fresh buffer.
    const big = new Float32Array(10 + 3 * 32 * 32);
    const view = big.subarray(10);
    const [viewFeed] = toNativeFeeds({ image: { data: view, shape: [1, 3, 32, 32] } }, m.inputs);
    expect(viewFeed!.data).toBe(view);
  });

  it('a large input does not grow JS ArrayBuffer memory while it runs', async () => {
    const m = await TractModel.load(fixture('cnn.onnx'));
    const n = 1024;
    const data = new Float32Array(n * 3 * 32 * 32).fill(0.25); // 12 MiB
    await m.run({ image: { data: data.subarray(0, 3 * 32 * 32), shape: [1, 3, 32, 32] } }); // warm up
    const before = process.memoryUsage().arrayBuffers;
    const pending = m.run({ image: { data, shape: [n, 3, 32, 32] } });
    const during = process.memoryUsage().arrayBuffers;
    const out = await pending;
    expect(out.probs!.shape).toEqual([n, 10]);
    // A JS-side copy would add 12 MiB here; allow 1 MiB of unrelated churn.
    expect(during - before).toBeLessThan(1 << 20);
  });

  it('outputs on both sides of the 4 KiB copy threshold hold the right rows and stay intact', async () => {
    // probs is [n, 10] float32: n = 102 is 4,080 bytes (copied into a JS-owned buffer),
    // n = 103 is 4,120 bytes (an external buffer that owns the engine's memory).
    const m = await TractModel.load(fixture('cnn.onnx'));
    const image = (n: number, seed: number) => ({
      image: { data: Float32Array.from({ length: n * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.001 * seed)), shape: [n, 3, 32, 32] },
    });
    const small = (await m.run(image(102, 1))).probs!;
    const large = m.runSync(image(103, 2)).probs!;
    expect(small.data.byteLength).toBe(4080);
    expect(large.data.byteLength).toBe(4120);
    const keep = [Float32Array.from(small.data as Float32Array), Float32Array.from(large.data as Float32Array)];
    // Later runs must not write into buffers already handed out.
    await m.run(image(102, 3));
    m.runSync(image(103, 4));
    expect(small.data).toEqual(keep[0]);
    expect(large.data).toEqual(keep[1]);
    // Each row is a softmax: sums to 1, so a wrong offset or length would show.
    for (const t of [small, large]) {
      const d = t.data as Float32Array;
      for (let r = 0; r < t.shape[0]!; r++) expect(d.subarray(r * 10, r * 10 + 10).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
  });
});
