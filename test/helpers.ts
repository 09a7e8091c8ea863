/** Shared paths and helpers for the tests. */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { prng } from '../src/prng';

export const ROOT = join(__dirname, '..');
export const FIXTURES = join(ROOT, '.cache', 'fixtures');
export const SILERO = join(ROOT, 'models', 'silero_vad_v5.onnx');

/** A generated fixture; `npm test` generates them first (scripts/fixtures.mjs). */
export function fixture(name: string): string {
  const p = join(FIXTURES, name);
  if (!existsSync(p)) throw new Error(`missing test fixture ${p}: run \`node scripts/fixtures.mjs\``);
  return p;
}

/** onnxruntime-node: the independent implementation the tests compare against. */
export const ort = createRequire(__filename)('onnxruntime-node') as typeof import('onnxruntime-node');

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** max |a - b| / max(1, |b|): absolute near zero, relative for large values. */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
  return m;
}

/** A deterministic PRNG, so inputs repeat across runs. */
export const rng = prng;

export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}
