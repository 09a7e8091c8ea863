/**
 * The wire format of native `run` / `runSync` (crates/oxinfer-node/src/packed.rs): feeds go as
 * an array of typed arrays plus one Int32Array of numbers, outputs come back as their typed
 * arrays plus one array of numbers. Objects with string keys cost more to cross the boundary
 * than a microsecond-scale model costs to run.
 */
import { native } from './native';
import { InputShapeError } from './errors';
import type { DType, NativeFeedArg, Outputs, TensorData, TensorInfo } from './tensor';

let codes: Map<string, number> | undefined;
let names: DType[] | undefined;

function dtypeTables(): [Map<string, number>, DType[]] {
  if (!codes || !names) {
    names = native().dtypeNames() as DType[];
    codes = new Map(names.map((n, i) => [n, i]));
  }
  return [codes, names];
}

/**
 * The buffer `meta` views. A fresh small Int32Array lives on V8's heap, and the native call's
 * `napi_get_typedarray_info` then moves it to a malloc'd backing store: ~0.25 µs of a 4 µs
 * add.onnx `runSync` (perf). Reused because the native side decodes `meta` before it returns,
 * for `run` as for `runSync` (the pool task gets its own copy); per thread, as this module is.
 */
let metaBuffer = new ArrayBuffer(256);

/** Resolved feeds → `[data, meta]`: per feed `[input index, dtype code, rank, ...dims]`. */
export function packFeeds(feeds: readonly NativeFeedArg[], inputs: readonly TensorInfo[]): [ArrayBufferView[], Int32Array] {
  const [code] = dtypeTables();
  const data: ArrayBufferView[] = new Array(feeds.length);
  let size = 0;
  for (const f of feeds) size += 3 + f.shape.length;
  if (4 * size > metaBuffer.byteLength) metaBuffer = new ArrayBuffer(Math.max(4 * size, 2 * metaBuffer.byteLength));
  const meta = new Int32Array(metaBuffer, 0, size);
  let at = 0;
  for (let i = 0; i < feeds.length; i++) {
    const f = feeds[i]!;
    data[i] = f.data;
    // toNativeFeeds has resolved the name against the inputs (keeping its index) and checked the
    // dims as safe integers.
    meta[at++] = f.input !== undefined && inputs[f.input]?.name === f.name ? f.input : inputs.findIndex((x) => x.name === f.name);
    meta[at++] = code.get(f.dtype) ?? -1;
    meta[at++] = f.shape.length;
    for (const d of f.shape) {
      if (d > 0x7fffffff) throw new InputShapeError(`input '${f.name}': dimension ${d} is too large (at most 2^31 - 1)`);
      meta[at++] = d;
    }
  }
  return [data, meta];
}

/** `[data 0, ..., meta]` → outputs by name, in the model's output order. */
export function unpackOutputs(raw: unknown[], outputs: readonly TensorInfo[]): Outputs {
  const [, name] = dtypeTables();
  const meta = raw[raw.length - 1] as number[];
  const out: Outputs = {};
  let at = 0;
  for (let i = 0; i < raw.length - 1; i++) {
    const dtype = name[meta[at++]!]!;
    const rank = meta[at++]!;
    const shape = meta.slice(at, at + rank);
    at += rank;
    out[outputs[i]!.name] = { data: raw[i] as TensorData, shape, dtype };
  }
  return out;
}
