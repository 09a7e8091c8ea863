import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AbortedError, DisposedError, OxinferError, TractModel } from '../src/index';
import { ARRAY_FOR_DTYPE } from '../src/tensor';
import { fixture } from './helpers';

describe('TractModel: load and metadata', () => {
  it('loads from a path and from bytes, with the same identity', async () => {
    const fromPath = await TractModel.load(fixture('add.onnx'));
    const bytes = readFileSync(fixture('add.onnx'));
    const fromBytes = await TractModel.load(new Uint8Array(bytes));
    const { createHash } = await import('node:crypto');
    expect(fromPath.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(fromBytes.sha256).toBe(fromPath.sha256);
    expect(fromPath.inputs).toEqual([
      { name: 'a', dtype: 'float32', shape: [1] },
      { name: 'b', dtype: 'float32', shape: [1] },
    ]);
    expect(fromPath.outputs).toEqual([{ name: 'c', dtype: 'float32', shape: [1] }]);
    expect(fromPath.ops.map((o) => o.op)).toContain('Add');
  });

  it('reports symbolic dims as strings and honours input facts', async () => {
    const cnn = await TractModel.load(fixture('cnn.onnx'));
    expect(cnn.inputs[0]).toEqual({ name: 'image', dtype: 'float32', shape: ['N', 3, 32, 32] });
    const fixed = await TractModel.load(fixture('cnn.onnx'), { inputs: { image: { shape: [2, 3, 32, 32] } } });
    expect(fixed.inputs[0]!.shape).toEqual([2, 3, 32, 32]);
    expect(fixed.outputs[0]!.shape).toEqual([2, 10]);
  });

  it('runs with a chosen thread count', async () => {
    const m = await TractModel.load(fixture('cnn.onnx'), { threads: 1 });
    expect(m.threads).toBe(1);
  });
});

describe('TractModel: run', () => {
  it('adds two numbers, async and sync, with outputs typed by dtype', async () => {
    const m = await TractModel.load(fixture('add.onnx'));
    const feeds = { a: new Float32Array([1.5]), b: new Float32Array([2.25]) };
    const out = await m.run(feeds);
    expect(out.c!.data).toBeInstanceOf(Float32Array);
    expect(Array.from(out.c!.data as Float32Array)).toEqual([3.75]);
    expect(out.c!.shape).toEqual([1]);
    expect(out.c!.dtype).toBe('float32');
    expect(Array.from(m.runSync(feeds).c!.data as Float32Array)).toEqual([3.75]);
  });

  it('carries every supported dtype in and out', async () => {
    const m = await TractModel.load(fixture('dtypes.onnx'));
    const out = await m.run({
      x_float32: { data: new Float32Array([1.5, -2]), shape: [2] },
      x_float64: { data: new Float64Array([1e300, -0.25]), shape: [2] },
      x_int64: { data: new BigInt64Array([2n ** 62n, -5n]), shape: [2] },
      x_int32: { data: new Int32Array([2 ** 30, -7]), shape: [2] },
      x_int8: { data: new Int8Array([-128, 100]), shape: [2] },
      x_uint8: { data: new Uint8Array([0, 254]), shape: [2] },
      x_bool: { data: new Uint8Array([1, 0]), shape: [2] },
    });
    expect(Array.from(out.y_float32!.data as Float32Array)).toEqual([3, -4]);
    expect(Array.from(out.y_float64!.data as Float64Array)).toEqual([2e300, -0.5]);
    expect(Array.from(out.y_int64!.data as BigInt64Array)).toEqual([2n ** 62n + 1n, -4n]);
    expect(Array.from(out.y_int32!.data as Int32Array)).toEqual([2 ** 30 + 1, -6]);
    expect(Array.from(out.y_int8!.data as Int8Array)).toEqual([-127, 101]);
    expect(Array.from(out.y_uint8!.data as Uint8Array)).toEqual([1, 255]);
    expect(out.y_bool!.dtype).toBe('bool');
    expect(Array.from(out.y_bool!.data as Uint8Array)).toEqual([0, 1]);
  });

  it('treats any nonzero byte of a bool input as true', async () => {
    const m = await TractModel.load(fixture('dtypes.onnx'));
    const feeds = Object.fromEntries(
      m.inputs.map((i) => [i.name, { data: new ARRAY_FOR_DTYPE[i.dtype](1), shape: [1] }]),
    );
    feeds.x_bool = { data: new Uint8Array([7]), shape: [1] };
    const out = await m.run(feeds);
    expect(Array.from(out.y_bool!.data as Uint8Array)).toEqual([0]);
  });

  it('runBatch gives the same rows as one-by-one runs', async () => {
    const m = await TractModel.load(fixture('cnn.onnx'));
    const images = [0, 1, 2].map((s) => ({
      image: { data: Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i * (s + 1) * 0.01)), shape: [1, 3, 32, 32] },
    }));
    const batched = await m.runBatch(images);
    expect(batched).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      const single = await m.run(images[i]!);
      expect(batched[i]!.probs!.shape).toEqual([1, 10]);
      const a = batched[i]!.probs!.data as Float32Array;
      const b = single.probs!.data as Float32Array;
      for (let k = 0; k < 10; k++) expect(a[k]).toBeCloseTo(b[k]!, 5);
    }
    expect(await m.runBatch([])).toEqual([]);
  });

  it('runs many calls concurrently on one shared plan, deterministically', async () => {
    const m = await TractModel.load(fixture('cnn.onnx'));
    const data = Float32Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.cos(i));
    const runs = await Promise.all(Array.from({ length: 16 }, () => m.run({ image: { data, shape: [2, 3, 32, 32] } })));
    const first = Buffer.from((runs[0]!.probs!.data as Float32Array).buffer);
    for (const r of runs) {
      const d = r.probs!.data as Float32Array;
      expect(Buffer.from(d.buffer, d.byteOffset, d.byteLength).equals(first)).toBe(true);
    }
  });

  it('keeps the event loop free while a run is in flight', async () => {
    const m = await TractModel.load(fixture('cnn.onnx'), { threads: 1 });
    const data = new Float32Array(256 * 3 * 32 * 32).fill(0.5);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    await m.run({ image: { data, shape: [256, 3, 32, 32] } });
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
  });
});

describe('TractModel: abort and dispose', () => {
  it('a run aborted before it starts rejects with ERR_ABORTED and does no work', async () => {
    const m = await TractModel.load(fixture('add.onnx'));
    const ac = new AbortController();
    ac.abort();
    // The feeds are wrong too: had any work (even validation) happened, this would be ERR_INPUT_SHAPE.
    const p = m.run({ a: { data: new Float32Array(5), shape: [5] }, b: new Float32Array([1]) }, { signal: ac.signal });
    await expect(p).rejects.toBeInstanceOf(AbortedError);
    await expect(p).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    const ok = await m.run({ a: new Float32Array([1]), b: new Float32Array([1]) });
    expect((ok.c!.data as Float32Array)[0]).toBe(2);
  });

  it('a run aborted while in flight never delivers its result', async () => {
    const m = await TractModel.load(fixture('cnn.onnx'), { threads: 1 });
    const ac = new AbortController();
    const p = m.run({ image: { data: new Float32Array(512 * 3 * 32 * 32), shape: [512, 3, 32, 32] } }, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('client went away')), 1);
    await expect(p).rejects.toMatchObject({ code: 'ERR_ABORTED', message: expect.stringContaining('client went away') });
  });

  it('calls after dispose reject with ERR_DISPOSED', async () => {
    const m = await TractModel.load(fixture('add.onnx'));
    await m.dispose();
    expect(m.disposed).toBe(true);
    const feeds = { a: new Float32Array([1]), b: new Float32Array([1]) };
    await expect(m.run(feeds)).rejects.toBeInstanceOf(DisposedError);
    await expect(m.runBatch([feeds])).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    expect(() => m.runSync(feeds)).toThrow(OxinferError);
    expect(() => m.session()).toThrow(DisposedError);
  });

  it('a run in flight when dispose is called still completes', async () => {
    const m = await TractModel.load(fixture('cnn.onnx'));
    const p = m.run({ image: { data: new Float32Array(64 * 3 * 32 * 32), shape: [64, 3, 32, 32] } });
    await m.dispose();
    const out = await p;
    expect(out.probs!.shape).toEqual([64, 10]);
  });
});
