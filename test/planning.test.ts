/**
 * Plans per input shape (crates/oxinfer-core/src/tract/plans.rs). A model whose dynamic axes
 * tract's symbolic analysis cannot follow (the corpus's EfficientNet: a Reshape of symbolic
 * image sizes) is planned at the first run of each shape; a model whose symbolic plan fails on
 * a shape that a plan for that shape runs (the corpus's CLIP text tower) plans per shape from
 * then on. Both give what one plan made for the given sizes gives.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TractModel } from '../src/index';
import { randomF32 } from './helpers';
import { CORPUS } from './corpus/corpus';

const EFFICIENTNET = join(CORPUS, 'efficientnet', 'model.onnx');
const CLIP_TEXT = join(CORPUS, 'clip-text', 'model.onnx');

const image = (batch: number, size: number, seed: number) => ({
  pixel_values: { data: randomF32(batch * 3 * size * size, seed), shape: [batch, 3, size, size] },
});

function tokens(batch: number, seq: number) {
  const n = batch * seq;
  return {
    input_ids: { data: BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 31 + 7) % 256)), shape: [batch, seq] },
    attention_mask: { data: new BigInt64Array(n).fill(1n), shape: [batch, seq] },
  };
}

const values = (x: { data: unknown }) => Array.from(x.data as Float32Array);

describe('plans per input shape', () => {
  it('EfficientNet plans per shape, and matches one plan made for the given sizes', async () => {
    const model = await TractModel.load(EFFICIENTNET, { cache: false });
    expect(model.planning).toBe('per-shape');
    expect(model.inputs[0]!.shape).toEqual(['batch', 3, 'height', 'width']);
    const fixed = await TractModel.load(EFFICIENTNET, { cache: false, inputs: { pixel_values: { shape: [2, 3, 48, 48] } } });
    expect(fixed.planning).toBe('symbolic');
    const x = image(2, 48, 1);
    const a = (await model.run(x)).logits!;
    expect(a.shape).toEqual([2, 10]);
    expect(values(a)).toEqual(values((await fixed.run(x)).logits!));
    await Promise.all([model.dispose(), fixed.dispose()]);
  });

  it('concurrent runs over 20 shapes (more than the 16 plans kept) each get their own shape', async () => {
    const model = await TractModel.load(EFFICIENTNET, { cache: false, threads: 2 });
    const shapes = Array.from({ length: 20 }, (_, i) => [1 + (i % 3), 32 + 2 * i] as const);
    const alone: number[][] = [];
    for (const [b, s] of shapes) alone.push(values((await model.run(image(b, s, s))).logits!));
    const together = await Promise.all(shapes.map(([b, s]) => model.run(image(b, s, s))));
    together.forEach((out, i) => {
      expect(out.logits!.shape).toEqual([shapes[i]![0], 10]);
      expect(values(out.logits!)).toEqual(alone[i]);
    });
    // A failed run (a shape the model refuses) leaves it usable.
    await expect(model.run({ pixel_values: { data: new Float32Array(3 * 4), shape: [1, 3, 2, 2] } })).rejects.toThrow();
    expect((await model.run(image(1, 40, 3))).logits!.shape).toEqual([1, 10]);
    await model.dispose();
  });

  it('a symbolic plan that fails on a shape gives way to a plan for that shape', async () => {
    const model = await TractModel.load(CLIP_TEXT, { cache: false });
    expect(model.planning).toBe('symbolic');
    const size = { shape: [1, 7] };
    const fixed = await TractModel.load(CLIP_TEXT, { cache: false, inputs: { input_ids: size, attention_mask: size } });
    const x = tokens(1, 7);
    const out = await model.run(x);
    expect(model.planning).toBe('per-shape');
    expect(values(out.text_embeds!)).toEqual(values((await fixed.run(x)).text_embeds!));
    expect((await model.run(tokens(3, 11))).last_hidden_state!.shape).toEqual([3, 11, 32]);
    await Promise.all([model.dispose(), fixed.dispose()]);
  });
});
