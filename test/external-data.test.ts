/**
 * External data (`model.onnx` + `model.onnx_data`, as exporters write large models): by path,
 * from the model's folder; as bytes, with the files given in the `externalData` load option.
 * Uses the corpus's BERT saved with external data (test/corpus/bert/model_extdata.onnx).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelLoadError, TractModel } from '../src/index';
import { CORPUS, entries, feeds } from './corpus/corpus';

const entry = entries().find((e) => e.id === 'bert/extdata')!;
const path = join(CORPUS, entry.file);
const dataPath = `${path}_data`;
const input = feeds(entry, 1);

async function hidden(model: TractModel): Promise<Float32Array> {
  const out = await model.run(input);
  await model.dispose();
  return out.last_hidden_state!.data as Float32Array;
}

describe('external data', () => {
  it('loads by path, and from bytes with the data file as bytes, ArrayBuffer or a path: same outputs', async () => {
    const byPath = await hidden(await TractModel.load(path, { cache: false }));
    const bytes = new Uint8Array(readFileSync(path));
    const data = new Uint8Array(readFileSync(dataPath));
    const location = 'model_extdata.onnx_data';
    for (const externalData of [
      [{ path: location, data }],
      [{ path: location, data: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) }],
      [{ path: location, data: dataPath }],
    ]) {
      expect(await hidden(await TractModel.load(bytes, { externalData, cache: false }))).toEqual(byPath);
    }
  });

  it('bytes without their data file: ERR_MODEL_LOAD naming the file and the option', async () => {
    const bytes = new Uint8Array(readFileSync(path));
    const err = await TractModel.load(bytes, { cache: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toMatch(/model_extdata\.onnx_data/);
    expect((err as Error).message).toMatch(/externalData/);
  });

  it('a data file too short for its tensors, or an unreadable path: typed errors', async () => {
    const bytes = new Uint8Array(readFileSync(path));
    const short = new Uint8Array(readFileSync(dataPath)).subarray(0, 100);
    await expect(TractModel.load(bytes, { externalData: [{ path: 'model_extdata.onnx_data', data: short }], cache: false })).rejects.toThrow(
      /has 100 bytes/,
    );
    await expect(
      TractModel.load(bytes, { externalData: [{ path: 'model_extdata.onnx_data', data: '/nonexistent/file' }], cache: false }),
    ).rejects.toThrow(/cannot read '\/nonexistent\/file'/);
    await expect(TractModel.load(bytes, { externalData: [{ path: 1 } as never], cache: false })).rejects.toThrow(/externalData\[0\]/);
  });
});
