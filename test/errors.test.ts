import { describe, expect, it } from 'vitest';
import {
  InputDtypeError,
  InputNameError,
  InputShapeError,
  InputValueError,
  Batcher,
  ModelLoadError,
  OxinferError,
  TractModel,
  type Feeds,
} from '../src/index';
import { fixture } from './helpers';

const good = () => ({ a: new Float32Array([1]), b: new Float32Array([2]) });

// Each bad call, with the error class and code it must produce and words its message must hold.
const cases: Array<[string, unknown, new (...a: never[]) => OxinferError, string, RegExp]> = [
  ['unknown input name', { ...good(), z: new Float32Array([1]) }, InputNameError, 'ERR_INPUT_NAME', /no input named 'z'.*a.*b/],
  ['missing input', { a: new Float32Array([1]) }, InputNameError, 'ERR_INPUT_NAME', /missing input 'b'/],
  ['wrong dtype', { ...good(), b: new Int32Array([2]) }, InputDtypeError, 'ERR_INPUT_DTYPE', /input 'b': expected float32, got int32/],
  ['dtype the array cannot carry', { ...good(), b: { data: new Float32Array([2]), shape: [1], dtype: 'int64' } }, InputDtypeError, 'ERR_INPUT_DTYPE', /int64.*Float32Array/],
  ['wrong shape', { ...good(), b: { data: new Float32Array([2, 3]), shape: [2] } }, InputShapeError, 'ERR_INPUT_SHAPE', /input 'b': expected shape \[1\], got \[2\]/],
  ['data length not matching shape', { ...good(), b: { data: new Float32Array([2, 3]), shape: [1] } }, InputShapeError, 'ERR_INPUT_SHAPE', /needs 1 elements, but the data has 2/],
  ['negative dim', { ...good(), b: { data: new Float32Array([2]), shape: [-1] } }, InputShapeError, 'ERR_INPUT_SHAPE', /invalid dimension -1/],
  ['NaN dim', { ...good(), b: { data: new Float32Array([2]), shape: [NaN] } }, InputShapeError, 'ERR_INPUT_SHAPE', /invalid dimension NaN/],
  ['fractional dim', { ...good(), b: { data: new Float32Array([2]), shape: [0.5] } }, InputShapeError, 'ERR_INPUT_SHAPE', /invalid dimension 0.5/],
  ['shape not an array', { ...good(), b: { data: new Float32Array([2]), shape: 1 } }, InputShapeError, 'ERR_INPUT_SHAPE', /shape must be an array/],
  ['plain array data', { ...good(), b: { data: [2], shape: [1] } }, InputDtypeError, 'ERR_INPUT_DTYPE', /data must be a typed array, got a plain Array/],
  ['string data', { ...good(), b: 'hello' }, InputDtypeError, 'ERR_INPUT_DTYPE', /input 'b': expected a typed array or \{ data, shape \}, got string/],
  ['null input', { ...good(), b: null }, InputDtypeError, 'ERR_INPUT_DTYPE', /got null/],
  ['DataView data', { ...good(), b: { data: new DataView(new ArrayBuffer(4)), shape: [1] } }, InputDtypeError, 'ERR_INPUT_DTYPE', /DataView/],
  ['feeds not an object', 42, InputNameError, 'ERR_INPUT_NAME', /feeds must be an object/],
  ['feeds null', null, InputNameError, 'ERR_INPUT_NAME', /feeds must be an object/],
  ['bare array for a 2-input model', new Float32Array([1]), InputNameError, 'ERR_INPUT_NAME', /one input.*has 2/],
];

describe('bad feeds get typed errors and leave the model usable', () => {
  it.each(cases)('%s', async (_label, feeds, cls, code, message) => {
    const m = await TractModel.load(fixture('add.onnx'));
    const p = m.run(feeds as Feeds);
    await expect(p).rejects.toBeInstanceOf(cls);
    await expect(p).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
    expect(() => m.runSync(feeds as Feeds)).toThrow(cls);
    // Every other way in fails the same way.
    const session = m.session();
    await expect(session.run(feeds as Feeds)).rejects.toMatchObject({ code });
    expect(() => session.runSync(feeds as Feeds)).toThrow(cls);
    if (feeds !== null && typeof feeds === 'object' && !ArrayBuffer.isView(feeds)) {
      await expect(m.runBatch([good(), feeds as Feeds])).rejects.toMatchObject({ code });
    }
    // The model still works after the failed call.
    const out = await m.run(good());
    expect((out.c!.data as Float32Array)[0]).toBe(3);
  });

  it('symbol values must agree across inputs', async () => {
    const m = await TractModel.load(fixture('encoder.onnx'));
    const ids = (n: number, s: number) => ({ data: new BigInt64Array(n * s).fill(1n), shape: [n, s] });
    const p = m.run({ input_ids: ids(1, 4), attention_mask: ids(1, 5), token_type_ids: ids(1, 4) });
    await expect(p).rejects.toMatchObject({ code: 'ERR_INPUT_SHAPE', message: expect.stringMatching(/'S'.*set to 4.*got 5/) });
  });

  it('runBatch rejects requests whose trailing dims differ, naming the request', async () => {
    const m = await TractModel.load(fixture('encoder.onnx'));
    const req = (s: number) => {
      const t = { data: new BigInt64Array(s).fill(1n), shape: [1, s] };
      return { input_ids: t, attention_mask: t, token_type_ids: t };
    };
    await expect(m.runBatch([req(4), req(6)])).rejects.toMatchObject({
      code: 'ERR_INPUT_SHAPE',
      message: expect.stringMatching(/request 1: input 'input_ids' has shape \[1,6\], request 0 has \[1,4\]/),
    });
  });
});

describe('bad models get ERR_MODEL_LOAD', () => {
  it('a missing file names the path', async () => {
    await expect(TractModel.load('/nonexistent/model.onnx')).rejects.toMatchObject({
      code: 'ERR_MODEL_LOAD',
      message: expect.stringContaining('/nonexistent/model.onnx'),
    });
  });

  it('garbage bytes', async () => {
    await expect(TractModel.load(new Uint8Array([1, 2, 3, 4, 5]))).rejects.toBeInstanceOf(ModelLoadError);
  });

  it('a wrong source type', async () => {
    await expect(TractModel.load(42 as unknown as string)).rejects.toBeInstanceOf(ModelLoadError);
  });

  it('an input fact for an input that does not exist', async () => {
    await expect(TractModel.load(fixture('add.onnx'), { inputs: { nope: { shape: [1] } } })).rejects.toMatchObject({
      code: 'ERR_INPUT_NAME',
      message: expect.stringMatching(/no input named 'nope'/),
    });
  });

  it('an unknown precision names the option and the value', async () => {
    await expect(TractModel.load(fixture('add.onnx'), { precision: 'fp8' as 'float32' })).rejects.toMatchObject({
      code: 'ERR_MODEL_LOAD',
      message: expect.stringContaining(`load option precision must be 'float32', 'bfloat16' or 'int8', got "fp8"`),
    });
  });

  it('truncated model bytes, at many cut points, never crash the process', async () => {
    const { readFileSync } = await import('node:fs');
    const bytes = readFileSync(fixture('cnn.onnx'));
    for (let cut = 1; cut < bytes.length; cut += Math.ceil(bytes.length / 40)) {
      const err = await TractModel.load(new Uint8Array(bytes.subarray(0, cut))).then(
        () => null,
        (e: unknown) => e,
      );
      if (err !== null) expect(err).toBeInstanceOf(ModelLoadError);
    }
  });
});

describe('unusual but valid or hostile input memory', () => {
  it('reads SharedArrayBuffer-backed arrays and views at an offset correctly', async () => {
    const m = await TractModel.load(fixture('add.onnx'));
    const shared = new Float32Array(new SharedArrayBuffer(8));
    shared.set([1.25, 2.5]);
    const backing = new Float32Array([9, 9, 9, 4, 9]);
    const view = backing.subarray(3, 4); // byteOffset 12
    const out = await m.run({ a: shared.subarray(0, 1), b: view });
    expect((out.c!.data as Float32Array)[0]).toBe(5.25);
    expect(m.runSync({ a: shared.subarray(1, 2), b: view }).c!.data[0]).toBe(6.5);
  });

  it('a detached input buffer is a shape error, not a crash', async () => {
    const m = await TractModel.load(fixture('add.onnx'));
    const a = new Float32Array([1]);
    structuredClone(a.buffer, { transfer: [a.buffer] }); // detaches a's buffer
    await expect(m.run({ a: { data: a, shape: [1] }, b: new Float32Array([1]) })).rejects.toMatchObject({
      code: 'ERR_INPUT_SHAPE',
    });
    expect((await m.run({ a: new Float32Array([1]), b: new Float32Array([1]) })).c!.data[0]).toBe(2);
  });

  it('a panic inside the engine (a computed Gather index out of range) is ERR_ENGINE, and the model keeps working', async () => {
    // y = table[x + 1] over a 4-row table: x = 3 reads row 4, which tract panics on; the index is
    // computed, so no input check sees it.
    const m = await TractModel.load(fixture('gather-shifted.onnx'));
    const p = m.run({ x: { data: new BigInt64Array([3n]), shape: [1] } });
    await expect(p).rejects.toMatchObject({ code: 'ERR_ENGINE', message: expect.stringContaining('internal engine error') });
    const ok = await m.run({ x: { data: new BigInt64Array([2n]), shape: [1] } });
    expect(Array.from(ok.y!.data as Float32Array)).toEqual([6, 7]);
  });

  it('an id past the table it indexes is ERR_INPUT_VALUE naming the input, in every way in', async () => {
    const m = await TractModel.load(fixture('encoder.onnx')); // vocabulary 1000, 2 token types
    const t = (...v: bigint[]) => ({ data: BigInt64Array.from(v), shape: [1, v.length] });
    const feeds = (types: bigint) => ({ input_ids: t(1n, 2n, 3n, 4n), attention_mask: t(1n, 1n, 1n, 1n), token_type_ids: t(0n, 0n, 0n, types) });
    const bad = /input 'token_type_ids': value 7 at flat position 3 is out of range for the table .* \(2 entries\)/;
    await expect(m.run(feeds(7n))).rejects.toBeInstanceOf(InputValueError);
    await expect(m.run(feeds(7n))).rejects.toMatchObject({ code: 'ERR_INPUT_VALUE', message: expect.stringMatching(bad) });
    expect(() => m.runSync(feeds(7n))).toThrow(bad);
    await expect(m.runBatch([feeds(0n), feeds(7n)])).rejects.toMatchObject({ code: 'ERR_INPUT_VALUE', message: expect.stringMatching(/^request 1: /) });
    await expect(m.run({ ...feeds(0n), input_ids: t(1n, 1000n, 3n, 4n) })).rejects.toThrow(/input 'input_ids': value 1000/);
    // A Batcher serves the good requests of a batch that holds a bad one.
    const b = new Batcher(m, { maxBatch: 4, maxDelayMs: 5 });
    const served = await Promise.allSettled([b.run(feeds(0n)), b.run(feeds(7n)), b.run(feeds(1n))]);
    expect(served.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((served[1] as PromiseRejectedResult).reason).toBeInstanceOf(InputValueError);
    await b.close();
    // Negative ids count from the end (ONNX), and the model keeps working.
    const ok = await m.run({ ...feeds(-1n), input_ids: t(-1n, 2n, 3n, 4n) });
    expect(ok.last_hidden_state!.shape).toEqual([1, 4, 64]);
  });
});

describe('copyInputs (debug aid for the zero-copy contract)', () => {
  it('runs on a copy taken at call time, so later writes to the input do not reach the run', async () => {
    const m = await TractModel.load(fixture('add.onnx'), { copyInputs: true });
    const a = new Float32Array([1]);
    const p = m.run({ a, b: new Float32Array([2]) });
    a[0] = 100; // a caller breaking the contract
    expect((await p).c!.data[0]).toBe(3);
  });
});
