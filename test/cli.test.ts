// Runs the built CLI (dist/cjs/cli/main.js; `npm run build:ts` makes it) as a user would.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNpy } from '../src/npy';

const ROOT = join(__dirname, '..');
const MAIN = join(ROOT, 'dist', 'cjs', 'cli', 'main.js');
const VAD = join(ROOT, 'models', 'silero_vad_v5.onnx');
const ADD = join(ROOT, '.cache', 'fixtures', 'conformance', 'test_add');

function oxinfer(...args: string[]) {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build it first (npm run build:ts)`);
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tmp = mkdtempSync(join(tmpdir(), 'oxinfer-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const MINILM = join(ROOT, '.cache', 'models', 'all-MiniLM-L6-v2');

describe('oxinfer CLI', () => {
  it('embed prints dims, norms and pairwise similarities (related sentences score higher)', () => {
    const texts = ['A cat sleeps on the sofa.', 'A kitten naps on the couch.', 'Interest rates rose again.'];
    const r = oxinfer('embed', '--model', MINILM, '--threads', '2', '--json', ...texts);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as {
      dims: number;
      texts: Array<{ text: string; norm: number; vector: number[] }>;
      similarities: Array<{ a: number; b: number; cosine: number }>;
    };
    expect(out.dims).toBe(384);
    expect(out.texts.map((t) => t.text)).toEqual(texts);
    for (const t of out.texts) expect(t.norm).toBeCloseTo(1, 5);
    const sim = (a: number, b: number) => out.similarities.find((s) => s.a === a && s.b === b)!.cosine;
    expect(sim(0, 1)).toBeGreaterThan(sim(0, 2) + 0.3);
    const text = oxinfer('embed', '--model', MINILM, '--threads', '2', ...texts);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/3 texts, 384 dims, cpu float32, mean pooling/);
    expect(text.stdout).toMatch(/\[0\] ~ \[1\]  0\.\d{4}/);
  });

  it("the README's semantic-search example ranks the cat sentences first", () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'examples', 'semantic-search.mjs'), MINILM], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { ranked: Array<{ text: string; score: number }> };
    expect(out.ranked.slice(0, 2).map((x) => x.text).sort()).toEqual(['Kittens love to nap in the sun.', 'The cat sits on the mat.']);
  });

  it('embed without --model or texts is a usage error; a bad folder is an error naming it', () => {
    expect(oxinfer('embed', 'hello').status).toBe(2);
    expect(oxinfer('embed', '--model', MINILM).status).toBe(2);
    const bad = oxinfer('embed', '--model', join(ROOT, 'models'), 'hello');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/config\.json is missing.*ERR_MODEL_LOAD/);
  });

  it('inspect --json lists the Silero inputs and the file hash', () => {
    // Silero needs its sample rate fixed (it selects the 16 kHz graph) and its window shape.
    const r = oxinfer('inspect', 'models/silero_vad_v5.onnx', '--shape', 'input=1,576', '--shape', 'state=2,1,128', '--const', 'sr=16000', '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout) as {
      sha256: string;
      inputs: Array<{ name: string; dtype: string; shape: unknown[] }>;
      outputs: Array<{ name: string }>;
      ops: Array<{ op: string; count: number }>;
    };
    expect(info.inputs.map((i) => i.name)).toEqual(['input', 'state']);
    expect(info.inputs.map((i) => i.dtype)).toEqual(['float32', 'float32']);
    expect(info.inputs.map((i) => i.shape)).toEqual([[1, 576], [2, 1, 128]]);
    expect(info.outputs.map((o) => o.name)).toEqual(['output', 'stateN']);
    expect(info.sha256).toBe(createHash('sha256').update(readFileSync(VAD)).digest('hex'));
    expect(info.ops.length).toBeGreaterThan(0);
  });

  it('demo finds the 4 sentences of assets/speech.wav', () => {
    const r = oxinfer('demo');
    expect(r.status, r.stderr).toBe(0);
    const truth = JSON.parse(readFileSync(join(ROOT, 'assets', 'speech.segments.json'), 'utf8')) as {
      segments: Array<{ start: number; end: number }>;
    };
    const found = [...r.stdout.matchAll(/^\s+(\d+\.\d+)s – (\d+\.\d+)s\s+\((\d+\.\d+)s\)$/gm)].map((m) => ({
      start: Number(m[1]),
      end: Number(m[2]),
    }));
    expect(found.length, r.stdout).toBe(4);
    found.forEach((seg, i) => {
      const want = truth.segments[i]!;
      expect(Math.abs(seg.start - want.start), `segment ${i} start`).toBeLessThanOrEqual(0.25);
      expect(Math.abs(seg.end - want.end), `segment ${i} end`).toBeLessThanOrEqual(0.25);
    });
    // One frame per 512 samples: ceil(285876 / 512).
    expect(r.stdout).toMatch(/\b559 frames\b/);
    expect(r.stdout).toMatch(/frames\/s/);
  });

  it.skipIf(!existsSync(ADD))('run --fill zeros gives zeros through Add', () => {
    const r = oxinfer('run', join(ADD, 'model.onnx'), '--fill', 'zeros', '--json');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      outputs: Array<{ name: string; dtype: string; shape: number[]; min: number; max: number; mean: number }>;
      timing: { runs: number };
    };
    expect(out.outputs.length).toBe(1);
    const [sum] = out.outputs;
    expect(sum!.dtype).toBe('float32');
    expect(sum!.shape).toEqual([3, 4, 5]);
    expect([sum!.min, sum!.max, sum!.mean]).toEqual([0, 0, 0]);
    expect(out.timing.runs).toBe(1);
  });

  it.skipIf(!existsSync(ADD))('run --input … --save matches the numpy reference', () => {
    const dir = join(tmp, 'add');
    const r = oxinfer(
      'run',
      join(ADD, 'model.onnx'),
      '--input',
      `x=${join(ADD, 'input_0.npy')}`,
      '--input',
      `y=${join(ADD, 'input_1.npy')}`,
      '--repeat',
      '3',
      '--save',
      dir,
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/2 runs after 1 warm-up/);
    const want = loadNpy(join(ADD, 'output_0.npy'));
    const got = loadNpy(join(dir, 'sum.npy'));
    expect(got.shape).toEqual(want.shape);
    const w = want.data as Float32Array;
    (got.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(w[i]!, 5));
  });

  it('run --precision loads the encoder so where the CPU has the instructions, and says which ran', () => {
    const encoder = join(ROOT, '.cache', 'fixtures', 'encoder.onnx');
    // Zeros: the random fill's integers (0..9) are out of range for token type ids.
    const shapes = ['--shape', 'input_ids=1,8', '--shape', 'attention_mask=1,8', '--shape', 'token_type_ids=1,8', '--fill', 'zeros'];
    const info = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
    const has = (...flags: string[]) => flags.every((f) => new RegExp(` ${f}\\b`).test(info));
    for (const [precision, runs] of [
      ['bfloat16', has('avx512_bf16')],
      ['int8', has('avx512f', 'avx512bw', 'avx512_vnni')],
    ] as const) {
      const r = oxinfer('run', encoder, ...shapes, '--precision', precision, '--json');
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { timing: { precision: string } };
      expect(out.timing.precision).toBe(runs ? precision : 'float32');
    }
    const bad = oxinfer('run', encoder, '--precision', 'fp8');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--precision must be float32, bfloat16 or int8, got 'fp8'/);
  });

  it('prints usage and exits 2 on unknown commands and options', () => {
    const bad = oxinfer('frobnicate');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(bad.stderr).toMatch(/Usage: oxinfer/);
    const opt = oxinfer('inspect', 'models/silero_vad_v5.onnx', '--bogus');
    expect(opt.status).toBe(2);
    expect(opt.stderr).toMatch(/unknown option '--bogus'/);
    expect(oxinfer('run').status).toBe(2);
  });

  it('reports errors with their code and exits 1', () => {
    const r = oxinfer('inspect', join(tmp, 'missing.onnx'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^oxinfer: .*ERR_MODEL_LOAD/);
  });

  it('prints --help, help CMD and --version', () => {
    const help = oxinfer('--help');
    expect(help.status).toBe(0);
    for (const cmd of ['inspect', 'run', 'demo']) expect(help.stdout).toContain(cmd);
    expect(oxinfer('help', 'run').stdout).toMatch(/--fill random\|zeros/);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(oxinfer('--version').stdout.trim()).toBe(pkg.version);
  });
});
