/**
 * Hostile models: the hand-made ones of scripts/gen_hostile.py, loaded directly, and a few
 * hundred mutated models through bench/fuzz.mjs (which runs them in child processes, so that a
 * crash is seen and not suffered). Every failure must be a typed OxinferError; nothing may
 * crash or hang.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, OxinferError, TractModel, type Feeds } from '../src/index';
import { FIXTURES, ROOT } from './helpers';
import { ensureHostile } from '../scripts/hostile-fixtures.mjs';

const HOSTILE = join(FIXTURES, 'hostile');
const FUZZ = join(ROOT, 'bench', 'fuzz.mjs');
const CASES = Number(process.env.OXINFER_FUZZ_CASES ?? 300);
const run = promisify(execFile);

interface FuzzReport {
  cases: number;
  crashes: number;
  untypedErrors: number;
  crashList: Array<{ case: number; how: string; reproducesAlone: boolean; file: string }>;
  untypedList: unknown[];
  outcomes: { loaded: number; ran: number; 'load-error': Record<string, number>; 'run-error': Record<string, number> };
  typedErrors: Record<string, number>;
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'oxinfer-fuzz-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs bench/fuzz.mjs; resolves with its exit code and report. */
async function fuzz(args: string[]): Promise<{ code: number; report: FuzzReport; stderr: string }> {
  const report = join(tmp, `report-${Math.random().toString(36).slice(2)}.json`);
  let code = 0;
  let stderr = '';
  try {
    ({ stderr } = await run(process.execPath, [FUZZ, ...args, '--report', report], { cwd: ROOT, timeout: 300_000 }));
  } catch (e) {
    const err = e as { code?: number; stderr?: string };
    code = typeof err.code === 'number' ? err.code : -1;
    stderr = err.stderr ?? '';
  }
  if (!existsSync(report)) throw new Error(`fuzz.mjs wrote no report (exit ${code}):\n${stderr}`);
  return { code, report: JSON.parse(readFileSync(report, 'utf8')) as FuzzReport, stderr };
}

const ARRAYS: Record<string, new (n: number) => ArrayBufferView> = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, int64: BigInt64Array, uint64: BigUint64Array,
  int32: Int32Array, uint32: Uint32Array, int16: Int16Array, uint16: Uint16Array, int8: Int8Array, uint8: Uint8Array,
  bool: Uint8Array,
};

/** Whatever `p` settles with: 'ok', or the error, which must be a typed OxinferError. */
async function typed(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    expect(e).toBeInstanceOf(OxinferError);
    expect(ERROR_CODES).toContain((e as OxinferError).code);
    return (e as OxinferError).code;
  }
}

describe('hand-made hostile models get typed errors (or load), never a crash or a hang', () => {
  ensureHostile(ROOT);
  const files = readdirSync(HOSTILE).filter((f) => f.endsWith('.onnx')).sort();

  it('the generator wrote the whole set', () => {
    expect(files.length).toBeGreaterThanOrEqual(50);
  });

  it.each(files)('%s', { timeout: 60_000 }, async (file) => {
    const load = TractModel.load(join(HOSTILE, file), { threads: 1 });
    const outcome = await typed(load);
    if (outcome === 'ok') {
      const model = await load;
      const shapes = model.inputs.map((i) => i.shape.map((d) => (typeof d === 'number' ? d : 1)));
      const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
      if (sizes.every((n) => n <= 2 ** 24)) {
        const feeds: Feeds = {};
        model.inputs.forEach((input, k) => {
          const Ctor = ARRAYS[input.dtype] ?? Float32Array;
          feeds[input.name] = { data: new Ctor(sizes[k]!) as Float32Array, shape: shapes[k]!, dtype: input.dtype };
        });
        await typed(model.run(feeds));
      }
      await model.dispose();
    }
    // Some of them must be refused outright.
    if (/^(external_|cycle_|nested_if_200|unknown_op|init_dims_|zero_bytes|no_graph|length_prefix|attr_transpose_perm_repeated)/.test(file)) {
      expect(outcome).toBe('ERR_MODEL_LOAD');
    }
  });
});

describe('graph checks before analysis', () => {
  // Without the check, tract's analysis of this model grew past 20 GB and the OOM killer ended
  // the process (found by fuzzing encoder.onnx).
  it('a Transpose whose perm repeats an axis is refused at once, naming the node and the perm', async () => {
    const t0 = performance.now();
    const err = await TractModel.load(join(HOSTILE, 'attr_transpose_perm_repeated.onnx'), { threads: 1 }).then(
      () => undefined,
      (e: unknown) => e as OxinferError,
    );
    expect(err?.code).toBe('ERR_MODEL_LOAD');
    expect(err?.message).toMatch(/\(Transpose\): perm \[0, 2, 3, 3\] is not a permutation of 0\.\.4: axis 3 appears twice/);
    expect(performance.now() - t0).toBeLessThan(2_000);
  });
});

describe('mutation fuzzing (bench/fuzz.mjs) in child processes', () => {
  it(`${CASES} cases: no crash, no untyped error`, { timeout: 300_000 }, async () => {
    const { code, report, stderr } = await fuzz(['--cases', String(CASES), '--seed', '1', '--quiet', '--crash-dir', join(tmp, 'crashes')]);
    expect(report.cases, stderr).toBe(CASES);
    expect(report.crashList, 'crashes (bytes saved under the crash dir)').toEqual([]);
    expect(report.untypedList, 'errors that are not OxinferErrors').toEqual([]);
    expect(code).toBe(0);
    // The harness reaches past the parser: some mutants load and run.
    expect(report.outcomes.loaded).toBeGreaterThan(0);
    expect(report.outcomes.ran).toBeGreaterThan(0);
    for (const c of Object.keys(report.typedErrors)) expect(ERROR_CODES).toContain(c);
  });

  // The candle embedder's files: mutated model.safetensors and tokenizer.json in a tiny BERT
  // folder, loaded and run through CandleEmbedder.
  it.each([
    ['safetensors', 150],
    ['tokenizer', 150],
  ])('--kind %s, %i cases: no crash, no untyped error', { timeout: 300_000 }, async (kind, cases) => {
    const { code, report, stderr } = await fuzz(['--kind', String(kind), '--cases', String(cases), '--seed', '1', '--quiet', '--crash-dir', join(tmp, `crashes-${kind}`)]);
    expect(report.cases, stderr).toBe(cases);
    expect(report.crashList, 'crashes (bytes saved under the crash dir)').toEqual([]);
    expect(report.untypedList, 'errors that are not OxinferErrors').toEqual([]);
    expect(code).toBe(0);
    expect(report.outcomes.ran).toBeGreaterThan(0); // some mutants still load and embed
    expect(report.outcomes['load-error'].ERR_MODEL_LOAD).toBeGreaterThan(0);
  });

  it('sees a crash, pins it to its case and saves the bytes (harness self-test)', { timeout: 120_000 }, async () => {
    const crashDir = join(tmp, 'self-test');
    const { code, report } = await fuzz(['--cases', '8', '--first', '100', '--chunk', '4', '--inject-crash', '105', '--quiet', '--crash-dir', crashDir]);
    expect(code).toBe(1);
    expect(report.cases).toBe(8);
    expect(report.crashes).toBe(1);
    expect(report.crashList[0]).toMatchObject({ case: 105, how: 'signal SIGSEGV', reproducesAlone: true });
    expect(existsSync(join(crashDir, 'onnx-seed1-case105.onnx'))).toBe(true);
  });
});
