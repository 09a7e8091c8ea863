/**
 * The inputs of a corpus entry at one of its shapes, drawn the same way by the corpus test and
 * the benchmark (each passes the package's PRNG and float16 conversion: src/ for the tests,
 * dist/ for the benchmark).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The manifest's entries (test/corpus/manifest.json). */
export function readEntries(dir) {
  return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).models;
}

function draw(spec, dims, seed, { prng, toFloat16Bits }) {
  const shape = spec.shape.map((d) => (typeof d === 'string' ? dims[d] : d));
  const n = shape.reduce((a, b) => a * b, 1);
  const r = prng(seed);
  const v = spec.values;
  if (spec.dtype === 'int64') {
    const data = new BigInt64Array(n);
    if (v.ids) for (let i = 0; i < n; i++) data[i] = BigInt(Math.floor(r() * v.ids));
    else if (v.mask) {
      data.fill(1n);
      // Right-padded rows, as a tokenizer pads a batch: row r ends r tokens early.
      const [rows, cols] = [shape[0], shape[shape.length - 1]];
      if (shape.length === 2) for (let row = 1; row < rows; row++) data.fill(0n, row * cols + cols - Math.min(row, cols - 1), (row + 1) * cols);
    } else if (v.ones) data.fill(1n);
    return { data, shape };
  }
  // Normal values by Box-Muller, scaled.
  const floats = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    floats[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r()) * (v.normal ?? 1);
  }
  if (spec.dtype === 'float16') return { data: Uint16Array.from(floats, toFloat16Bits), shape };
  return { data: floats, shape };
}

/** `{ name: { data, shape } }` for every input of `entry` at `shapes[shapeIndex]`. */
export function drawFeeds(entry, shapeIndex, helpers) {
  const out = {};
  entry.inputs.forEach((spec, i) => (out[spec.name] = draw(spec, entry.shapes[shapeIndex], 1000 * shapeIndex + i + 1, helpers)));
  return out;
}
