/**
 * Plans per input shape (crates/oxinfer-core/src/tract/plans.rs): a model whose dynamic axes
 * tract's symbolic analysis cannot follow is planned at the first run of each shape. Checked on
 * the corpus's torch-exported BERT: the per-shape path gives what one plan with the sizes given
 * at load gives, and concurrent runs over more shapes than the cache keeps (16) each get their
 * own shape's result.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TractModel } from '../src/index';
import { CORPUS } from './corpus/corpus';

const BERT = join(CORPUS, 'bert', 'model.onnx');

function feeds(batch: number, seq: number, seed: number) {
  const n = batch * seq;
  const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 31 + seed * 17) % 256));
  const mask = new BigInt64Array(n).fill(1n);
  return {
    input_ids: { data: ids, shape: [batch, seq] },
    attention_mask: { data: mask, shape: [batch, seq] },
    token_type_ids: { data: new BigInt64Array(n), shape: [batch, seq] },
  };
}

describe('plans per input shape', () => {
  it('the torch-exported BERT plans per shape, and matches one plan made for the given sizes', async () => {
    const model = await TractModel.load(BERT, { cache: false });
    expect(model.planning).toBe('per-shape');
    expect(model.inputs.map((i) => i.shape)).toEqual([['batch', 'sequence'], ['batch', 'sequence'], ['batch', 'sequence']]);
    const fixedShape = { shape: [2, 9] };
    const fixed = await TractModel.load(BERT, { cache: false, inputs: { input_ids: fixedShape, attention_mask: fixedShape, token_type_ids: fixedShape } });
    expect(fixed.planning).toBe('symbolic');
    const x = feeds(2, 9, 1);
    const a = (await model.run(x)).last_hidden_state!;
    const b = (await fixed.run(x)).last_hidden_state!;
    expect(a.shape).toEqual([2, 9, 32]);
    expect(Array.from(a.data as Float32Array)).toEqual(Array.from(b.data as Float32Array));
    await Promise.all([model.dispose(), fixed.dispose()]);
  });

  it('concurrent runs over 20 shapes (more than the 16 plans kept) each get their own shape', async () => {
    const model = await TractModel.load(BERT, { cache: false, threads: 2 });
    const shapes = Array.from({ length: 20 }, (_, i) => [1 + (i % 3), 3 + i] as const);
    const alone: Float32Array[] = [];
    for (const [b, s] of shapes) alone.push((await model.run(feeds(b, s, s))).last_hidden_state!.data as Float32Array);
    const together = await Promise.all(shapes.map(([b, s]) => model.run(feeds(b, s, s))));
    together.forEach((out, i) => {
      const [b, s] = shapes[i]!;
      expect(out.last_hidden_state!.shape).toEqual([b, s, 32]);
      expect(Array.from(out.last_hidden_state!.data as Float32Array)).toEqual(Array.from(alone[i]!));
    });
    // A failed run (a shape the model refuses) leaves it usable.
    await expect(model.run(feeds(1, 200, 0))).rejects.toThrow();
    expect((await model.run(feeds(2, 9, 1))).last_hidden_state!.shape).toEqual([2, 9, 32]);
    await model.dispose();
  });
});
