/**
 * NumPy .npy files (format 1.0, 2.0 and 3.0) ↔ tensors. Little-endian, C order only: the
 * plain numeric dtypes and bool. float16 is carried as its Uint16Array bits, bool as a
 * Uint8Array of 0/1. Spec: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ARRAY_FOR_DTYPE, type DType, type TensorData } from './tensor';

export interface NpyArray {
  data: TensorData;
  shape: number[];
  dtype: DType;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** NumPy's type code (after the byte-order mark) for each dtype. */
const CODE_FOR_DTYPE: Record<DType, string> = {
  float32: 'f4',
  float64: 'f8',
  float16: 'f2',
  int64: 'i8',
  int32: 'i4',
  int16: 'i2',
  int8: 'i1',
  uint64: 'u8',
  uint32: 'u4',
  uint16: 'u2',
  uint8: 'u1',
  bool: 'b1',
};
const DTYPE_FOR_CODE = new Map(Object.entries(CODE_FOR_DTYPE).map(([d, c]) => [c, d as DType]));

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkHost(): void {
  // Typed arrays use the host's byte order; .npy data here is little-endian.
  if (!LITTLE_ENDIAN_HOST) throw new Error('npy: big-endian hosts are not supported');
}

function itemSize(dtype: DType): number {
  return Number(CODE_FOR_DTYPE[dtype].slice(1));
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Parses the header's dict literal: `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`. */
function parseHeader(header: string): { descr: string; fortranOrder: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    if (/'descr'\s*:\s*\[/.test(header)) throw new Error('npy: structured dtypes are not supported');
    throw new Error(`npy: malformed header ${JSON.stringify(header.trim())}`);
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const n = Number(s.replace(/L$/, '')); // Python 2 wrote longs as 3L
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`npy: bad dimension '${s}' in shape`);
      return n;
    });
  return { descr, fortranOrder: fortran === 'True', shape };
}

function dtypeOf(descr: string): DType {
  const order = descr[0];
  const code = descr.slice(1);
  const dtype = DTYPE_FOR_CODE.get(code);
  if (order === '>' && dtype !== undefined && itemSize(dtype) > 1) {
    throw new Error(
      `npy: big-endian data ('${descr}') is not supported; save it little-endian, e.g. arr.astype(arr.dtype.newbyteorder('<'))`,
    );
  }
  if (dtype === undefined || !['<', '|', '=', '>'].includes(order ?? '')) {
    throw new Error(
      `npy: unsupported dtype '${descr}'; supported: ${[...DTYPE_FOR_CODE.keys()].map((c) => `<${c}`).join(' ')}`,
    );
  }
  return dtype;
}

/** Reads an .npy file's bytes. The data is a view of `bytes` where aligned, else a copy. */
export function readNpy(bytes: Uint8Array): NpyArray {
  checkHost();
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new Error('npy: not a .npy file (missing the \\x93NUMPY magic)');
  }
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number;
  let headerLen: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new Error('npy: truncated header');
    headerLen = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new Error(`npy: unsupported format version ${major}.${bytes[7]!}`);
  }
  const dataStart = headerStart + headerLen;
  if (dataStart > bytes.length) throw new Error('npy: truncated header');
  // 1.0 and 2.0 headers are latin1, 3.0 headers utf8; the parts we read are ASCII either way.
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart));
  const { descr, fortranOrder, shape } = parseHeader(header);
  const dtype = dtypeOf(descr);
  const count = product(shape);
  if (fortranOrder) {
    throw new Error('npy: fortran_order arrays are not supported; save a C-order array (np.ascontiguousarray)');
  }
  const size = itemSize(dtype);
  const byteLength = count * size;
  if (dataStart + byteLength > bytes.length) {
    throw new Error(
      `npy: data truncated: shape [${shape.join(',')}] of ${dtype} needs ${byteLength} bytes, the file has ${bytes.length - dataStart}`,
    );
  }
  const Ctor = ARRAY_FOR_DTYPE[dtype] as unknown as {
    new (buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData;
    new (length: number): TensorData;
  };
  const offset = bytes.byteOffset + dataStart;
  let data: TensorData;
  if (offset % size === 0) {
    data = new Ctor(bytes.buffer, offset, count);
  } else {
    // A typed array view must be aligned to its element size: copy into a fresh buffer.
    data = new Ctor(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart, dataStart + byteLength));
  }
  return { data, shape, dtype };
}

/** Reads an .npy file. */
export function loadNpy(path: string): NpyArray {
  try {
    return readNpy(readFileSync(path));
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('npy:')) e.message = `${path}: ${e.message}`;
    throw e;
  }
}

/** Encodes a tensor as .npy bytes (format 1.0, or 2.0 if the header needs it). */
export function writeNpy(array: { data: TensorData; shape: readonly number[]; dtype: DType }): Uint8Array {
  checkHost();
  const { data, shape, dtype } = array;
  if (!Object.hasOwn(CODE_FOR_DTYPE, dtype)) throw new Error(`npy: unsupported dtype '${String(dtype)}'`);
  const Expected = ARRAY_FOR_DTYPE[dtype];
  const fits = data instanceof Expected || (data instanceof Uint8ClampedArray && Expected === Uint8Array);
  if (!fits) throw new Error(`npy: ${dtype} data must be a ${Expected.name}, got ${data.constructor.name}`);
  if (product(shape) !== data.length) {
    throw new Error(`npy: shape [${shape.join(',')}] holds ${product(shape)} elements, the data has ${data.length}`);
  }
  const order = itemSize(dtype) === 1 ? '|' : '<';
  const shapeText = shape.length === 1 ? `(${shape[0]!},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${order}${CODE_FOR_DTYPE[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Pad with spaces and a final newline so the data starts on a 64-byte boundary.
  let major = 1;
  let prefix = 10;
  if (prefix + dict.length + 1 > 0xffff) {
    major = 2;
    prefix = 12;
  }
  const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  dict = dict.padEnd(total - prefix - 1, ' ') + '\n';
  const out = new Uint8Array(total + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, dict.length, true);
  else view.setUint32(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) out[prefix + i] = dict.charCodeAt(i);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), total);
  return out;
}

/** Writes a tensor to an .npy file. */
export function saveNpy(path: string, array: { data: TensorData; shape: readonly number[]; dtype: DType }): void {
  writeFileSync(path, writeNpy(array));
}
