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
});
