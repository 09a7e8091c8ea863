/**
 * The real-model corpus (test/corpus/manifest.json, written by scripts/corpus/gen_corpus.py):
 * its entries, the inputs fed to them, and the comparison of oxinfer's outputs with
 * onnxruntime-node's on the same file and inputs. Shared by the corpus test and the benchmark.
 */
import { readFileSync } from 'node:fs';
import { drawFeeds, readEntries } from './draw.mjs';
import { join } from 'node:path';
import { TractModel } from '../../src/index';
import { toFloat16Bits, fromFloat16Bits } from '../../src/float16';
import { prng } from '../../src/prng';
import type { Feeds, Outputs } from '../../src/tensor';

export const CORPUS = __dirname;

export interface InputSpec {
  name: string;
  dtype: 'float32' | 'float16' | 'int64';
  shape: Array<number | string>;
  values: { ids?: number; mask?: true; zeros?: true; ones?: true; normal?: number };
}

export interface Entry {
  id: string;
  family: string;
  form: string;
  file: string;
  exporter: string;
  opset: number;
  dynamic_axes: string[];
  inputs: InputSpec[];
  outputs: string[];
  shapes: Array<Record<string, number>>;
  bytes: number;
}

export function entries(): Entry[] {
  return readEntries(CORPUS);
}

/** Entries known not to load or match, with the reason (an op tract lacks, named). */
export function knownFailures(): Record<string, string> {
  return JSON.parse(readFileSync(join(CORPUS, 'known-failures.json'), 'utf8')) as Record<string, string>;
}

/** Largest allowed error, relative to the reference output's largest magnitude, per form. */
export const TOLERANCE: Record<string, number> = {
  fp32: 1e-4,
  extdata: 1e-4,
  fp16: 2e-2, // float16 activations: ~3 decimal digits, accumulated over a few layers
  'int8-dyn': 5e-2, // activations quantized per call; a rounding flip moves a value by one step
  'int8-qdq': 5e-2,
  'int8-qop': 5e-2,
};

/** The inputs of one shape: the same values for both engines. */
export function feeds(entry: Entry, shapeIndex: number) {
  return drawFeeds(entry, shapeIndex, { prng, toFloat16Bits });
}

export function toNumbers(data: ArrayLike<number | bigint>, dtype: string): Float64Array {
  const out = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    out[i] = dtype === 'float16' ? fromFloat16Bits(x as number) : Number(x);
  }
  return out;
}

/** max |ours - theirs| / max(1e-6, max |theirs|). */
export function relativeError(ours: Float64Array, theirs: Float64Array): number {
  if (ours.length !== theirs.length) return Infinity;
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < theirs.length; i++) {
    diff = Math.max(diff, Math.abs(ours[i]! - theirs[i]!));
    scale = Math.max(scale, Math.abs(theirs[i]!));
  }
  return Number.isNaN(diff) ? Infinity : diff / scale;
}

export interface Outcome {
  id: string;
  loaded: boolean;
  /** Per shape, the largest relative error over the outputs. */
  errors: number[];
  matches: boolean;
  /** How oxinfer planned it (TractModel.planning), once loaded. */
  planning: 'symbolic' | 'per-shape' | undefined;
  error?: string;
}

type OrtModule = typeof import('onnxruntime-node');

/** Loads the entry with no shape hints, runs it at each of its shapes and compares with onnxruntime. */
export async function check(entry: Entry, ort: OrtModule, threads = 2): Promise<Outcome> {
  const path = join(CORPUS, entry.file);
  const outcome: Outcome = { id: entry.id, loaded: false, errors: [], matches: false, planning: undefined };
  let model: TractModel | undefined;
  try {
    model = await TractModel.load(path, { threads, cache: false });
    outcome.loaded = true;
    // Quantized forms are compared with onnxruntime running the graph's ops as written: its
    // fused u8 x s8 kernels saturate 16-bit pair sums on CPUs without VNNI, so its optimized
    // output can differ from the graph's exact result by tens of quantization steps.
    const graphOptimizationLevel = entry.form.startsWith('int8') ? 'disabled' : 'all';
    const session = await ort.InferenceSession.create(path, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel });
    for (let s = 0; s < entry.shapes.length; s++) {
      const f = feeds(entry, s);
      const ours: Outputs = await model.run(f as Feeds);
      const theirs = await session.run(
        Object.fromEntries(Object.entries(f).map(([k, t]) => [k, new ort.Tensor(entry.inputs.find((i) => i.name === k)!.dtype, t.data, t.shape)])),
      );
      let worst = 0;
      for (const name of entry.outputs) {
        const a = ours[name];
        const b = theirs[name];
        if (!a || !b) throw new Error(`output '${name}' missing from ${a ? 'onnxruntime' : 'oxinfer'}`);
        if (a.shape.join(',') !== b.dims.join(',')) throw new Error(`output '${name}' has shape [${a.shape}] here, [${b.dims}] in onnxruntime`);
        if (a.dtype !== b.type) throw new Error(`output '${name}' is ${a.dtype} here, ${b.type} in onnxruntime`);
        worst = Math.max(worst, relativeError(toNumbers(a.data as ArrayLike<number>, a.dtype), toNumbers(b.data as ArrayLike<number>, b.type)));
      }
      outcome.errors.push(worst);
    }
    await session.release();
    outcome.planning = model.planning; // after the runs: a failed symbolic plan turns per-shape
    outcome.matches = outcome.errors.every((e) => e <= (TOLERANCE[entry.form] ?? 1e-4));
    if (!outcome.matches) outcome.error = `error ${outcome.errors.map((e) => e.toExponential(2)).join(', ')} over ${TOLERANCE[entry.form]}`;
  } catch (e) {
    outcome.error = (e as Error).message;
  } finally {
    await model?.dispose();
  }
  return outcome;
}
