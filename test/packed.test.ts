import { describe, expect, it } from 'vitest';
import { fromNative } from '../src/errors';
import { native } from '../src/native';
import { packFeeds, unpackOutputs } from '../src/packed';
import { fixture } from './helpers';

/** The native error a call throws, as the typed error the API would give. */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return fromNative(e);
  }
  throw new Error('expected a throw');
}

describe('the run wire format (packed.ts <-> packed.rs)', () => {
  it('round-trips feeds and outputs', async () => {
    const n = await native().loadTractModel(fixture('add.onnx'), {}, undefined);
    const inputs = n.inputs.map((i) => ({ name: i.name, dtype: i.dtype as 'float32', shape: i.shape }));
    const outputs = n.outputs.map((i) => ({ name: i.name, dtype: i.dtype as 'float32', shape: i.shape }));
    // Feeds in the opposite order of the model's inputs: the indices say which is which.
    const [data, meta] = packFeeds(
      [
        { name: 'b', dtype: 'float32', shape: [1], data: new Float32Array([2.25]) },
        { name: 'a', dtype: 'float32', shape: [1], data: new Float32Array([1.5]) },
      ],
      inputs,
    );
    expect(Array.from(meta)).toEqual([1, 0, 1, 1, 0, 0, 1, 1]);
    const out = unpackOutputs(n.runSync(data, meta), outputs);
    expect(out.c).toEqual({ data: new Float32Array([3.75]), shape: [1], dtype: 'float32' });
  });

  it('refuses a malformed description with a typed error, and the model keeps working', async () => {
    const n = await native().loadTractModel(fixture('add.onnx'), {}, undefined);
    const a = new Float32Array([1]);
    const b = new Float32Array([2]);
    const cases: Array<[Int32Array, ArrayBufferView[], string]> = [
      [new Int32Array([7, 0, 1, 1, 1, 0, 1, 1]), [a, b], 'ERR_INPUT_NAME'], // no input 7
      [new Int32Array([0, 99, 1, 1, 1, 0, 1, 1]), [a, b], 'ERR_INPUT_DTYPE'], // no dtype 99
      [new Int32Array([0, 0, 1, -1, 1, 0, 1, 1]), [a, b], 'ERR_INPUT_SHAPE'], // negative dim
      [new Int32Array([0, 0, -2]), [a], 'ERR_INPUT_SHAPE'], // negative rank
      [new Int32Array([0, 0, 1, 1, 1, 0]), [a, b], 'ERR_INPUT_SHAPE'], // ends early
      [new Int32Array([0, 0, 1, 1, 1, 0, 1, 1, 5]), [a, b], 'ERR_INPUT_SHAPE'], // trailing values
      [new Int32Array([0, 0, 1, 1]), [a, 'not an array' as unknown as ArrayBufferView], 'ERR_INPUT_DTYPE'],
    ];
    for (const [meta, data, code] of cases) {
      expect(thrown(() => n.runSync(data, meta))).toMatchObject({ code });
      // The async form refuses before scheduling anything (a throw, which callAsync rejects with).
      expect(thrown(() => n.run(data, meta))).toMatchObject({ code });
    }
    const ok = n.runSync([a, b], new Int32Array([0, 0, 1, 1, 1, 0, 1, 1]));
    expect(Array.from(ok[0] as Float32Array)).toEqual([3]);
  });
});
