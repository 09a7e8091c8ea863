import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromFloat16Bits, toFloat16Bits } from '../src/float16';
import { loadNpy, readNpy, writeNpy } from '../src/npy';
import { ARRAY_FOR_DTYPE, type DType, type TensorData } from '../src/tensor';

const DATA = join(__dirname, 'data');
const CONFORMANCE = join(__dirname, '..', '.cache', 'fixtures', 'conformance');

const ALL: DType[] = [
  'float32',
  'float64',
  'float16',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint64',
  'uint32',
  'uint16',
  'uint8',
  'bool',
];

const CODE: Record<DType, string> = {
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

/** 0..n-1 in the dtype's array kind (float16 as bits, bool as 0/1). */
function arange(dtype: DType, n: number): TensorData {
  const a = new ARRAY_FOR_DTYPE[dtype](n);
  for (let i = 0; i < n; i++) {
    if (dtype === 'int64' || dtype === 'uint64') a[i] = BigInt(i);
    else if (dtype === 'float16') a[i] = toFloat16Bits(i);
    else if (dtype === 'bool') a[i] = i % 2;
    else a[i] = i;
  }
  return a;
}

describe('npy round trips', () => {
  for (const dtype of ALL) {
    it(`${dtype}: 2x3 and 0-d`, () => {
      for (const shape of [[2, 3], []]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const data = arange(dtype, n);
        const back = readNpy(writeNpy({ data, shape, dtype }));
        expect(back.dtype).toBe(dtype);
        expect(back.shape).toEqual(shape);
        expect(back.data).toBeInstanceOf(ARRAY_FOR_DTYPE[dtype]);
        expect(Array.from(back.data as ArrayLike<number>)).toEqual(Array.from(data as ArrayLike<number>));
      }
    });
  }

  it('empty arrays and 1-d shapes', () => {
    const back = readNpy(writeNpy({ data: new Float32Array(0), shape: [0, 3], dtype: 'float32' }));
    expect(back.shape).toEqual([0, 3]);
    expect(back.data.length).toBe(0);
    const one = readNpy(writeNpy({ data: new Int32Array([7]), shape: [1], dtype: 'int32' }));
    expect(one.shape).toEqual([1]);
  });

  it('pads the header so the data starts on a 64-byte boundary', () => {
    const bytes = writeNpy({ data: new Float64Array([1, 2, 3]), shape: [3], dtype: 'float64' });
    const dataStart = bytes.length - 3 * 8;
    expect(dataStart % 64).toBe(0);
    expect(bytes[dataStart - 1]).toBe(0x0a); // the header ends with '\n'
  });

  it('uses format 2.0 when the header does not fit 1.0', () => {
    const shape = Array.from({ length: 30000 }, () => 1); // '1, ' * 30000 > 65535 bytes
    const bytes = writeNpy({ data: new Uint8Array([9]), shape, dtype: 'uint8' });
    expect(bytes[6]).toBe(2);
    const back = readNpy(bytes);
    expect(back.shape.length).toBe(30000);
    expect(back.data[0]).toBe(9);
  });

  it('rejects data that does not match the dtype or shape', () => {
    expect(() => writeNpy({ data: new Float32Array(2), shape: [2], dtype: 'float64' })).toThrow(/Float64Array/);
    expect(() => writeNpy({ data: new Float32Array(2), shape: [3], dtype: 'float32' })).toThrow(/3 elements/);
  });
});

describe('npy files written by numpy', () => {
  for (const dtype of ALL.filter((d) => d !== 'bool')) {
    it(`reads arange_${CODE[dtype]}.npy and writes the same bytes back`, () => {
      const bytes = readFileSync(join(DATA, `arange_${CODE[dtype]}.npy`));
      const arr = readNpy(bytes);
      expect(arr.dtype).toBe(dtype);
      expect(arr.shape).toEqual([2, 3]);
      const values = Array.from(arr.data as ArrayLike<number | bigint>, (v) =>
        dtype === 'float16' ? fromFloat16Bits(v as number) : Number(v),
      );
      expect(values).toEqual([0, 1, 2, 3, 4, 5]);
      // numpy's header layout is the same as ours, so the bytes are too.
      expect(Buffer.from(writeNpy(arr)).equals(bytes)).toBe(true);
    });
  }

  it('reads bool, 0-d, empty, negative int64 and float16 specials', () => {
    const b = loadNpy(join(DATA, 'bool.npy'));
    expect(b.dtype).toBe('bool');
    expect(Array.from(b.data as Uint8Array)).toEqual([1, 0, 1, 1]);

    const s = loadNpy(join(DATA, 'scalar_f8.npy'));
    expect(s.shape).toEqual([]);
    expect(Array.from(s.data as Float64Array)).toEqual([-2.5]);

    const e = loadNpy(join(DATA, 'empty_f4.npy'));
    expect(e.shape).toEqual([0, 3]);
    expect(e.data.length).toBe(0);

    const n = loadNpy(join(DATA, 'negative_i8.npy'));
    expect(Array.from(n.data as BigInt64Array)).toEqual([-1n, -(2n ** 40n), 2n ** 62n]);

    const h = loadNpy(join(DATA, 'half_specials.npy'));
    expect(Array.from(h.data as Uint16Array, fromFloat16Bits)).toEqual([-1.5, 65504, Infinity, 2 ** -24]);
  });

  it('reads format 2.0 and 3.0 headers', () => {
    for (const v of [2, 3]) {
      const bytes = readFileSync(join(DATA, `v${v}_f4.npy`));
      expect(bytes[6]).toBe(v);
      const arr = readNpy(bytes);
      expect(arr.shape).toEqual([3]);
      expect(Array.from(arr.data as Float32Array)).toEqual([1.5, -2.25, 3]);
    }
  });

  it('rejects fortran order and big-endian data with a clear error', () => {
    expect(() => loadNpy(join(DATA, 'fortran_f4.npy'))).toThrow(/fortran_order/);
    expect(() => loadNpy(join(DATA, 'big_endian_i4.npy'))).toThrow(/big-endian/);
  });

  it('rejects files that are not .npy', () => {
    expect(() => readNpy(new TextEncoder().encode('hello, world'))).toThrow(/not a \.npy/);
  });

  it.skipIf(!existsSync(CONFORMANCE))('reads every fixture in .cache/fixtures/conformance', () => {
    const index = JSON.parse(readFileSync(join(CONFORMANCE, 'index.json'), 'utf8')) as Array<{
      name: string;
      inputs: Array<{ dtype: string; shape: number[] }>;
      outputs: Array<{ dtype: string; shape: number[] }>;
    }>;
    let files = 0;
    for (const c of index) {
      const dir = join(CONFORMANCE, c.name);
      if (!existsSync(dir)) continue;
      const names = new Set(readdirSync(dir));
      const check = (file: string, meta: { dtype: string; shape: number[] } | undefined) => {
        if (!meta || !names.has(file)) return;
        const arr = loadNpy(join(dir, file));
        expect(arr.dtype, `${c.name}/${file}`).toBe(meta.dtype);
        expect(arr.shape, `${c.name}/${file}`).toEqual(meta.shape);
        expect(arr.data.length).toBe(meta.shape.reduce((a, b) => a * b, 1));
        files++;
      };
      c.inputs.forEach((m, i) => check(`input_${i}.npy`, m));
      c.outputs.forEach((m, i) => check(`output_${i}.npy`, m));
    }
    expect(files).toBeGreaterThan(1000);
  });
});

describe('alignment', () => {
  it('copies the data when it does not start at a multiple of the element size', () => {
    const bytes = writeNpy({ data: new Float64Array([1.25, -3]), shape: [2], dtype: 'float64' });
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    const arr = readNpy(shifted.subarray(3));
    expect(arr.data.byteOffset % 8).toBe(0);
    expect(Array.from(arr.data as Float64Array)).toEqual([1.25, -3]);
  });
});
