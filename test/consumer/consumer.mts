// The ESM flavour: 'oxinfer' resolves to the "import" condition (dist/esm/index.d.mts), which
// must give the same API as the CommonJS types. Compiled, never run, by test/types.test.ts.
import oxinfer, { ERROR_CODES, OxinferError, TractModel, platformTriple, type ErrorCode, type Outputs } from 'oxinfer';

const model = await TractModel.load('model.onnx', { threads: 1 });
const out: Outputs = await model.run({ a: new Float32Array([1]), b: new Float32Array([2]) });
const codes: ErrorCode[] = ERROR_CODES;
const same: boolean = oxinfer.TractModel === TractModel;
try {
  await model.session().run(new Float32Array(1));
} catch (e) {
  if (e instanceof OxinferError) console.log(e.code);
}
console.log(out.c?.data, codes, same, platformTriple());
// @ts-expect-error: not a dtype name
await model.run({ a: { data: new Float32Array(1), shape: [1], dtype: 'float8' } });
