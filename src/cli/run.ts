/** `oxinfer run MODEL`: runs a model on given or generated inputs; prints outputs and timing. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fromFloat16Bits, toFloat16Bits } from '../float16';
import { type NpyArray, loadNpy, saveNpy } from '../npy';
import { prng } from '../prng';
import { TractModel, isPrecision } from '../tract-model';
import { ARRAY_FOR_DTYPE, type DType, type Feeds, type Outputs, type Tensor, type TensorData, type TensorInfo } from '../tensor';
import {
  type Spec,
  UsageError,
  constants,
  expectPositionals,
  flag,
  keyValue,
  list,
  parseArgs,
  parseDims,
  positiveInt,
  str,
} from './args';

export const summary = 'run a model on .npy or generated inputs; print outputs and timing';

export const usage = `Usage: oxinfer run MODEL [options]

Runs MODEL (an ONNX file) and prints, for each output, its dtype, shape, min, max, mean and
first values, then how long the runs took.

Options:
  --input NAME=FILE.npy   feed input NAME from a NumPy file (repeatable)
  --shape NAME=1,3,224,224
                          shape of a generated input (repeatable); symbolic dims not set
                          here or by an --input of the same symbol are 1
  --const NAME=VALUE[:DTYPE]
                          fix scalar input NAME at load time (DTYPE default: int64 for
                          integers, else float32), e.g. --const sr=16000
  --fill random|zeros     how to generate inputs not given (default random: floats uniform
                          in [-1, 1), integers in [0, 10), bools 0/1; seeded, so runs repeat)
  --seed N                seed of the random fill (default 1)
  --repeat N              run N times (default 1); when N > 1 the first run is a warm-up,
                          not counted in the timing
  --threads N             intra-op threads (default: the CPUs this process may use)
  --precision NAME        float32 (default), bfloat16 or int8: products by constant weights in
                          bfloat16 where the CPU has AVX512-BF16, in 8-bit integers where it
                          has AVX512-VNNI (the timing line says which ran)
  --save DIR              write each output to DIR/NAME.npy
  --json                  print JSON instead of text`;

const spec: Spec = {
  input: { type: 'string', multiple: true },
  shape: { type: 'string', multiple: true },
  const: { type: 'string', multiple: true },
  fill: { type: 'string' },
  seed: { type: 'string' },
  repeat: { type: 'string' },
  threads: { type: 'string' },
  precision: { type: 'string' },
  save: { type: 'string' },
  json: { type: 'boolean' },
};

const FIRST_VALUES = 6;

/** Generated data: zeros, or random values suited to the dtype. */
function generate(dtype: DType, length: number, fill: 'random' | 'zeros', random: () => number): TensorData {
  const data = new ARRAY_FOR_DTYPE[dtype](length);
  if (fill === 'zeros') return data;
  for (let i = 0; i < length; i++) {
    const r = random();
    switch (dtype) {
      case 'float32':
      case 'float64':
        data[i] = 2 * r - 1;
        break;
      case 'float16':
        data[i] = toFloat16Bits(2 * r - 1);
        break;
      case 'bool':
        data[i] = r < 0.5 ? 0 : 1;
        break;
      case 'int64':
      case 'uint64':
        data[i] = BigInt(Math.floor(r * 10));
        break;
      default:
        data[i] = Math.floor(r * 10);
    }
  }
  return data;
}

interface Plan {
  feeds: Feeds;
  /** Where each input came from, for the report. */
  sources: Array<{ name: string; dtype: DType; shape: number[]; from: string }>;
  /** Notes for stderr (defaulted dims). */
  notes: string[];
}

/** Feeds for every input of `inputs`: from files, else generated with the shapes resolved. */
function planFeeds(
  inputs: readonly TensorInfo[],
  files: Map<string, string>,
  loaded: Map<string, NpyArray>,
  shapes: Map<string, number[]>,
  fill: 'random' | 'zeros',
  seed: number,
): Plan {
  const byName = new Map(inputs.map((i) => [i.name, i]));
  for (const name of [...loaded.keys(), ...shapes.keys()]) {
    if (!byName.has(name)) {
      throw new Error(`the model has no input '${name}'; its inputs: ${inputs.map((i) => i.name).join(', ')}`);
    }
  }
  const plan: Plan = { feeds: {}, sources: [], notes: [] };
  // Symbol values fixed by the shapes we are given, so that e.g. a batch size set for one
  // input is used for every input with the same symbol.
  const symbols = new Map<string, number>();
  const learn = (info: TensorInfo, shape: readonly number[]) => {
    if (info.shape.length !== shape.length) return;
    info.shape.forEach((d, i) => {
      if (typeof d === 'string' && !symbols.has(d)) symbols.set(d, shape[i]!);
    });
  };
  for (const [name, arr] of loaded) {
    const wanted = shapes.get(name);
    if (wanted && wanted.join(',') !== arr.shape.join(',')) {
      throw new Error(`--shape ${name}=${wanted.join(',')} differs from the shape [${arr.shape.join(',')}] of ${files.get(name)!}`);
    }
    learn(byName.get(name)!, arr.shape);
  }
  for (const [name, shape] of shapes) learn(byName.get(name)!, shape);

  const random = prng(seed);
  const defaulted = new Set<string>();
  let example: string | undefined;
  for (const info of inputs) {
    const arr = loaded.get(info.name);
    if (arr) {
      plan.feeds[info.name] = arr;
      plan.sources.push({ name: info.name, dtype: arr.dtype, shape: arr.shape, from: files.get(info.name)! });
      continue;
    }
    let shape = shapes.get(info.name);
    if (!shape) {
      const before = defaulted.size;
      shape = info.shape.map((d) => {
        if (typeof d === 'number') return d;
        const known = symbols.get(d);
        if (known !== undefined) return known;
        defaulted.add(d);
        return 1;
      });
      if (defaulted.size > before) example ??= `${info.name}=${shape.join(',')}`;
    }
    const length = shape.reduce((a, b) => a * b, 1);
    plan.feeds[info.name] = { data: generate(info.dtype, length, fill, random), shape, dtype: info.dtype };
    plan.sources.push({ name: info.name, dtype: info.dtype, shape, from: fill });
  }
  if (defaulted.size) {
    plan.notes.push(
      `symbolic dim${defaulted.size > 1 ? 's' : ''} ${[...defaulted].join(', ')} set to 1; ` +
        `give input shapes with --shape, e.g. --shape ${example ?? ''}`,
    );
  }
  return plan;
}

interface Stats {
  name: string;
  dtype: DType;
  shape: number[];
  min: number | null;
  max: number | null;
  mean: number | null;
  /** NaN elements, left out of min/max/mean. */
  nan: number;
  first: Array<number | string>;
}

function valueAt(t: Tensor, i: number): number {
  const v = t.data[i]!;
  if (t.dtype === 'float16') return fromFloat16Bits(v as number);
  return Number(v);
}

function stats(name: string, t: Tensor): Stats {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let nan = 0;
  const n = t.data.length;
  for (let i = 0; i < n; i++) {
    const v = valueAt(t, i);
    if (Number.isNaN(v)) {
      nan++;
      continue;
    }
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  const counted = n - nan;
  const first: Array<number | string> = [];
  for (let i = 0; i < Math.min(n, FIRST_VALUES); i++) {
    const v = t.data[i]!;
    // 64-bit integers beyond 2^53 stay exact as strings.
    first.push(typeof v === 'bigint' && !Number.isSafeInteger(Number(v)) ? v.toString() : valueAt(t, i));
  }
  return {
    name,
    dtype: t.dtype,
    shape: t.shape,
    min: counted ? min : null,
    max: counted ? max : null,
    mean: counted ? sum / counted : null,
    nan,
    first,
  };
}

function fmt(v: number | string | null): string {
  if (v === null) return '-';
  if (typeof v === 'string' || Number.isInteger(v)) return String(v);
  return Number(v.toPrecision(6)).toString();
}

function timing(times: number[]) {
  const sorted = [...times].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return {
    runs: times.length,
    minMs: sorted[0]!,
    medianMs: median,
    meanMs: times.reduce((a, b) => a + b, 0) / times.length,
  };
}

function safeFileName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_') || 'output';
}

export async function main(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv, spec);
  const [path] = expectPositionals(args, ['model'], 'run') as [string];
  const fill = str(args, 'fill') ?? 'random';
  if (fill !== 'random' && fill !== 'zeros') throw new UsageError(`--fill must be random or zeros, got '${fill}'`);
  const repeat = positiveInt(args, 'repeat', 1);
  const threads = positiveInt(args, 'threads');
  const precision = str(args, 'precision');
  if (precision !== undefined && !isPrecision(precision)) {
    throw new UsageError(`--precision must be float32, bfloat16 or int8, got '${precision}'`);
  }
  const seed = positiveInt(args, 'seed', 1);
  const json = flag(args, 'json');
  const files = new Map<string, string>();
  for (const text of list(args, 'input')) {
    const [name, file] = keyValue('input', text);
    if (files.has(name)) throw new UsageError(`--input ${name} given twice`);
    files.set(name, file);
  }
  const shapes = new Map<string, number[]>();
  for (const text of list(args, 'shape')) {
    const [name, dims] = keyValue('shape', text);
    if (shapes.has(name)) throw new UsageError(`--shape ${name} given twice`);
    shapes.set(name, parseDims('shape', dims) as number[]);
  }

  const loaded = new Map([...files].map(([name, file]) => [name, loadNpy(file)] as const));
  const model = await TractModel.load(path, {
    constants: constants(args),
    ...(threads === undefined ? {} : { threads }),
    ...(precision === undefined ? {} : { precision }),
  });
  const plan = planFeeds(model.inputs, files, loaded, shapes, fill, seed);
  for (const note of plan.notes) process.stderr.write(`note: ${note}\n`);

  const times: number[] = [];
  let outputs: Outputs = {};
  for (let i = 0; i < repeat; i++) {
    const t0 = process.hrtime.bigint();
    outputs = await model.run(plan.feeds);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (repeat === 1 || i > 0) times.push(ms);
  }
  const results = Object.entries(outputs).map(([name, t]) => stats(name, t));
  const time = { ...timing(times), warmup: repeat > 1 ? 1 : 0, threads: model.threads, precision: model.precision };

  const saveDir = str(args, 'save');
  const saved: string[] = [];
  if (saveDir !== undefined) {
    mkdirSync(saveDir, { recursive: true });
    for (const [name, t] of Object.entries(outputs)) {
      const file = join(saveDir, `${safeFileName(name)}.npy`);
      saveNpy(file, t);
      saved.push(file);
    }
  }

  if (json) {
    const out = { model: path, sha256: model.sha256, inputs: plan.sources, outputs: results, timing: time, saved };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } else {
    const lines: string[] = [`${path}`, 'inputs'];
    for (const s of plan.sources) lines.push(`  ${s.name}  ${s.dtype}  [${s.shape.join(', ')}]  ${s.from}`);
    lines.push('outputs');
    for (const r of results) {
      const nan = r.nan ? `  nan ${r.nan}` : '';
      lines.push(
        `  ${r.name}  ${r.dtype}  [${r.shape.join(', ')}]  min ${fmt(r.min)}  max ${fmt(r.max)}  mean ${fmt(r.mean)}${nan}`,
      );
      const more = r.first.length < r.shape.reduce((a, b) => a * b, 1) ? ', …' : '';
      lines.push(`    [${r.first.map(fmt).join(', ')}${more}]`);
    }
    const runs = `${time.runs} run${time.runs === 1 ? '' : 's'}${time.warmup ? ' after 1 warm-up' : ''}`;
    const threads = `${time.threads} thread${time.threads === 1 ? '' : 's'}, ${time.precision}`;
    lines.push(
      `timing (${runs}, ${threads}): min ${time.minMs.toFixed(3)} ms  ` +
        `median ${time.medianMs.toFixed(3)} ms  mean ${time.meanMs.toFixed(3)} ms`,
    );
    if (saved.length) lines.push(`saved ${saved.join(', ')}`);
    process.stdout.write(lines.join('\n') + '\n');
  }
  await model.dispose();
}
