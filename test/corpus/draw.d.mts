import type { Entry } from './corpus';
type Typed = Float32Array | Uint16Array | BigInt64Array;
export function readEntries(dir: string): Entry[];
export function drawFeeds(
  entry: Entry,
  shapeIndex: number,
  helpers: { prng: (seed: number) => () => number; toFloat16Bits: (x: number) => number },
): Record<string, { data: Typed; shape: number[] }>;
