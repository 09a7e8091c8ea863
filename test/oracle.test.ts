/**
 * Correctness against an independent implementation: onnxruntime-node on the same model files
 * and inputs. Tolerances are stated per model.
 */
import { describe, expect, it } from 'vitest';
import { TractModel } from '../src/index';
import { loadSileroVad } from '../src/vad';
import { loadWav } from '../src/wav';
import { fixture, maxAbsDiff, maxRelDiff, ort, randomF32, rng, SILERO } from './helpers';

describe('Silero VAD v5 matches onnxruntime frame by frame', () => {
  // Probabilities within 1e-4 absolute. The state holds LSTM cell values up to ~200 in
  // magnitude, so it is compared relatively: |a - b| <= 1e-4 * max(1, |b|).
  it('probabilities and state over the bundled recording, within 1e-4', async () => {
    const { samples } = loadWav(`${__dirname}/../assets/speech.wav`);
    const model = await loadSileroVad(SILERO);
    const session = model.session();
    expect(session.carried).toEqual({ stateN: 'state' });
    expect(model.inputs.map((i) => i.name)).toEqual(['input', 'state']); // sr was folded at load
    const ref = await ort.InferenceSession.create(SILERO);
    let refState = new ort.Tensor('float32', new Float32Array(2 * 128), [2, 1, 128]);
    const sr = new ort.Tensor('int64', new BigInt64Array([16000n]), []);
    const window = 512;
    const context = 64;
    const frame = new Float32Array(context + window);
    let maxProb = 0;
    let maxState = 0;
    let frames = 0;
    let speechFrames = 0;
    for (let start = 0; start + window <= samples.length; start += window) {
      // Official wrapper: the previous window's last 64 samples prefix each window.
      frame.copyWithin(0, window, window + context);
      frame.set(samples.subarray(start, start + window), context);
      if (start === 0) frame.fill(0, 0, context);
      const input = new Float32Array(frame); // ort and oxinfer get identical bytes
      const ours = await session.run(input); // the one input left to feed, of known shape
      const theirs = await ref.run({ input: new ort.Tensor('float32', input, [1, context + window]), state: refState, sr });
      refState = theirs.stateN as typeof refState;
      const p = (ours.output!.data as Float32Array)[0]!;
      maxProb = Math.max(maxProb, Math.abs(p - (theirs.output!.data as Float32Array)[0]!));
      maxState = Math.max(maxState, maxRelDiff(ours.stateN!.data as Float32Array, theirs.stateN!.data as Float32Array));
      if (p > 0.5) speechFrames++;
      frames++;
    }
    expect(frames).toBeGreaterThan(500);
    // The recording is about 60% speech: a model that ran but ignored its state would not find it.
    expect(speechFrames).toBeGreaterThan(frames * 0.3);
    expect(maxProb).toBeLessThan(1e-4);
    expect(maxState).toBeLessThan(1e-4);
  });

  it('reset() starts the state from zeros again', async () => {
    const model = await loadSileroVad(SILERO);
    const session = model.session();
    const x = { input: { data: randomF32(576, 7, 0.3), shape: [1, 576] } };
    const first = (await session.run(x)).output!.data[0];
    await session.run(x);
    session.reset();
    expect((await session.run(x)).output!.data[0]).toBe(first);
  });
});

describe('generated models match onnxruntime', () => {
  it('CNN, batch 4: max abs diff < 1e-5 on probabilities', async () => {
    const path = fixture('cnn.onnx');
    const data = randomF32(4 * 3 * 32 * 32, 1);
    const ours = await (await TractModel.load(path)).run({ image: { data, shape: [4, 3, 32, 32] } });
    const ref = await (await ort.InferenceSession.create(path)).run({ image: new ort.Tensor('float32', data, [4, 3, 32, 32]) });
    expect(ours.probs!.shape).toEqual([4, 10]);
    expect(maxAbsDiff(ours.probs!.data as Float32Array, ref.probs!.data as Float32Array)).toBeLessThan(1e-5);
  });

  for (const name of ['encoder.onnx', 'encoder-minilm.onnx']) {
    it(`${name}, batch 2 x 16 tokens with padding: max abs diff < 1e-3 on hidden states`, async () => {
      const path = fixture(name);
      const [n, s] = [2, 16];
      const r = rng(3);
      const ids = BigInt64Array.from({ length: n * s }, () => BigInt(Math.floor(r() * 1000)));
      const mask = BigInt64Array.from({ length: n * s }, (_, i) => (i % s < (i < s ? s : 11) ? 1n : 0n));
      const types = new BigInt64Array(n * s);
      const ours = await (await TractModel.load(path)).run({
        input_ids: { data: ids, shape: [n, s] },
        attention_mask: { data: mask, shape: [n, s] },
        token_type_ids: { data: types, shape: [n, s] },
      });
      const t = (d: BigInt64Array) => new ort.Tensor('int64', d, [n, s]);
      const ref = await (await ort.InferenceSession.create(path)).run({
        input_ids: t(ids),
        attention_mask: t(mask),
        token_type_ids: t(types),
      });
      const a = ours.last_hidden_state!;
      expect(a.shape).toEqual(ref.last_hidden_state!.dims);
      expect(maxAbsDiff(a.data as Float32Array, ref.last_hidden_state!.data as Float32Array)).toBeLessThan(1e-3);
    });
  }

  // Fixed shapes of batch 1 take another path through tract's declutter (the batch axis of one
  // is summed away inside the products), which oxinfer's kernels cover too.
  it('encoder-minilm.onnx loaded with fixed shapes [1, 128]: max abs diff < 1e-3 on hidden states', async () => {
    const path = fixture('encoder-minilm.onnx');
    const shape = [1, 128];
    const r = rng(4);
    const ids = BigInt64Array.from({ length: 128 }, () => BigInt(Math.floor(r() * 1000)));
    const mask = BigInt64Array.from({ length: 128 }, (_, i) => (i < 100 ? 1n : 0n));
    const types = new BigInt64Array(128);
    const fixed = { shape, dtype: 'int64' as const };
    const model = await TractModel.load(path, { inputs: { input_ids: fixed, attention_mask: fixed, token_type_ids: fixed } });
    expect(model.inputs.map((i) => i.shape)).toEqual([shape, shape, shape]);
    const ours = await model.run({ input_ids: ids, attention_mask: mask, token_type_ids: types });
    const t = (d: BigInt64Array) => new ort.Tensor('int64', d, shape);
    const ref = await (await ort.InferenceSession.create(path)).run({ input_ids: t(ids), attention_mask: t(mask), token_type_ids: t(types) });
    const a = ours.last_hidden_state!;
    expect(a.shape).toEqual(ref.last_hidden_state!.dims);
    expect(maxAbsDiff(a.data as Float32Array, ref.last_hidden_state!.data as Float32Array)).toBeLessThan(1e-3);
  });
});
