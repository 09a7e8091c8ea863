/**
 * Tensors as the JS API sees them: typed arrays plus a shape and a dtype. This module turns
 * the caller's feeds into what the native layer takes, validating names, shapes and dtypes
 * first, and never copying input data.
 */
import { InputDtypeError, InputNameError, InputShapeError } from './errors';

export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint64'
  | 'uint32'
  | 'uint16'
  | 'uint8'
  | 'bool';

/** A known size, or a symbol such as `'N'` for a size fixed only at run time. */
export type Dim = number | string;

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: Dim[];
}

export type TensorData =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray;

/** An input: its data (read in place, never copied on the JS side) and its shape. */
export interface TensorInput {
  data: TensorData;
  shape: readonly number[];
  /** Needed only where the array kind is ambiguous and the model does not settle it. */
  dtype?: DType;
}

/** Inputs by name. A bare typed array is accepted for an input whose shape is fully known. */
export type Feeds = Record<string, TensorInput | TensorData>;

/** An output. `data` owns the engine's buffer (an external ArrayBuffer; no copy). */
export interface Tensor {
  data: TensorData;
  shape: number[];
  dtype: DType;
}

export type Outputs = Record<string, Tensor>;

/** What the native layer takes for one input. */
export interface NativeFeedArg {
  name: string;
  dtype: string;
  shape: number[];
  data: ArrayBufferView;
  /** Index of the input among those the feed was resolved against (`toNativeFeeds`). */
  input?: number;
}

/** The dtypes each typed-array kind can carry. The first is the default. */
const KINDS: ReadonlyArray<[new (...a: never[]) => TensorData, DType[]]> = [
  [Float32Array, ['float32']],
  [Float64Array, ['float64']],
  [BigInt64Array, ['int64']],
  [BigUint64Array, ['uint64']],
  [Int32Array, ['int32']],
  [Uint32Array, ['uint32']],
  [Int16Array, ['int16']],
  [Uint16Array, ['uint16', 'float16']],
  [Int8Array, ['int8']],
  [Uint8Array, ['uint8', 'bool']],
  [Uint8ClampedArray, ['uint8', 'bool']],
];

/** The typed array class that carries each dtype. */
export const ARRAY_FOR_DTYPE: Record<DType, new (length: number) => TensorData> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint64: BigUint64Array,
  uint32: Uint32Array,
  uint16: Uint16Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

export function isTypedArray(x: unknown): x is TensorData {
  return ArrayBuffer.isView(x) && !(x instanceof DataView);
}

const DTYPES_BY_CLASS = new Map<unknown, DType[]>(KINDS);

function dtypesOf(data: TensorData): DType[] {
  const direct = DTYPES_BY_CLASS.get(data.constructor);
  if (direct) return direct;
  for (const [cls, dtypes] of KINDS) if (data instanceof cls) return dtypes; // subclasses
  return [];
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'a plain Array';
  if (ArrayBuffer.isView(x)) return x.constructor.name;
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'an object';
  return typeof x;
}

function formatShape(shape: readonly Dim[]): string {
  return `[${shape.join(',')}]`;
}

function checkShape(name: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) {
    throw new InputShapeError(`input '${name}': shape must be an array of sizes, got ${describe(shape)}`);
  }
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new InputShapeError(
        `input '${name}': shape [${shape.map(String).join(',')}] has an invalid dimension ${String(d)}; ` +
          'dimensions must be non-negative integers',
      );
    }
  }
  return shape as number[];
}

/**
 * Resolves one feed against its declared input: the dtype from the array kind (using the
 * model's dtype where the kind is ambiguous), the shape from the caller or, for a bare typed
 * array, from the model when it is fully known.
 */
export function toNativeFeed(name: string, value: unknown, info: TensorInfo | undefined): NativeFeedArg {
  let data: unknown;
  let shape: number[];
  let declared: DType | undefined;
  if (isTypedArray(value)) {
    data = value;
    if (!info) throw new InputNameError(`the model has no input named '${name}'`);
    if (!info.shape.every((d): d is number => typeof d === 'number')) {
      throw new InputShapeError(
        `input '${name}' has shape ${formatShape(info.shape)} with symbolic dims; pass { data, shape } instead of a bare typed array`,
      );
    }
    shape = info.shape;
  } else if (value !== null && typeof value === 'object' && 'data' in value) {
    const v = value as { data: unknown; shape?: unknown; dtype?: unknown };
    data = v.data;
    shape = checkShape(name, v.shape);
    if (v.dtype !== undefined) declared = v.dtype as DType;
  } else {
    throw new InputDtypeError(
      `input '${name}': expected a typed array or { data, shape }, got ${describe(value)}`,
    );
  }
  if (!isTypedArray(data)) {
    throw new InputDtypeError(`input '${name}': data must be a typed array, got ${describe(data)}`);
  }
  const possible = dtypesOf(data);
  let dtype: DType;
  if (declared !== undefined) {
    if (!possible.includes(declared)) {
      throw new InputDtypeError(
        `input '${name}': dtype '${String(declared)}' cannot be carried by a ${describe(data)} (it carries ${possible.join(' or ')})`,
      );
    }
    dtype = declared;
  } else if (info && possible.includes(info.dtype)) {
    dtype = info.dtype;
  } else {
    dtype = possible[0] ?? 'uint8';
  }
  return { name, dtype, shape, data };
}

/** Resolves every feed of a run. The native layer checks them against the model. */
export function toNativeFeeds(
  feeds: unknown,
  inputs: readonly TensorInfo[],
  what = 'feeds',
): NativeFeedArg[] {
  if (isTypedArray(feeds)) {
    const free = inputs;
    if (free.length !== 1) {
      throw new InputNameError(
        `a bare typed array can feed only a model with one input; this one has ${free.length}: ${free
          .map((i) => i.name)
          .join(', ')}`,
      );
    }
    const arg = toNativeFeed(free[0]!.name, feeds, free[0]);
    arg.input = 0;
    return [arg];
  }
  if (feeds === null || typeof feeds !== 'object' || Array.isArray(feeds)) {
    throw new InputNameError(`${what} must be an object of named inputs, got ${describe(feeds)}`);
  }
  const out: NativeFeedArg[] = [];
  for (const name in feeds as Record<string, unknown>) {
    if (!Object.prototype.hasOwnProperty.call(feeds, name)) continue;
    const ix = inputs.findIndex((i) => i.name === name); // models have few inputs: no map to build
    const info = inputs[ix];
    if (!info) {
      const known = inputs.map((i) => `'${i.name}' (${i.dtype} ${formatShape(i.shape)})`).join(', ');
      throw new InputNameError(`the model has no input named '${name}'; its inputs are ${known}`);
    }
    const arg = toNativeFeed(name, (feeds as Record<string, unknown>)[name], info);
    arg.input = ix;
    out.push(arg);
  }
  return out;
}

interface NativeOutputArg {
  name: string;
  dtype: string;
  shape: number[];
  data: ArrayBufferView;
}

export function toOutputs(native: NativeOutputArg[]): Outputs {
  const out: Outputs = {};
  for (const o of native) {
    out[o.name] = { data: o.data as TensorData, shape: o.shape, dtype: o.dtype as DType };
  }
  return out;
}

export { formatShape };
