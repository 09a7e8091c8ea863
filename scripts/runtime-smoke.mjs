#!/usr/bin/env node
// Smoke test of the built package (dist/ and the local .node addon) under other JavaScript
// runtimes: Bun and Deno, with Node as the baseline. Each runtime loads this repo's package
// through CommonJS `require` and through the ESM entry, runs the add fixture (path and bytes,
// async and sync, a native error, an abort) and a few Silero VAD frames, whose probabilities
// must match Node's.
//
// The runtimes come from npm, pinned below, installed without their install scripts into the
// ignored folder .cache/runtimes/; the binaries are found by path in their platform packages.
//
//   node scripts/runtime-smoke.mjs [--report FILE] [--only bun,deno] [--no-install]
//
// Prints a JSON summary. Exits 0 only if every runtime that could be installed passed (a
// runtime that cannot be installed here, e.g. offline, is reported as not installed).
// Needs `npm run build:ts` and the addon built first, and .cache/fixtures (scripts/fixtures.mjs).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BUN_VERSION = '1.4.5';
const DENO_VERSION = '2.9.6';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const PREFIX = join(ROOT, '.cache', 'runtimes');
const WORK = join(PREFIX, 'smoke');
const TIMEOUT_MS = 180_000;

const args = process.argv.slice(2);
function option(name) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}
const reportFile = option('--report');
const only = option('--only')?.split(',');
const install = !args.includes('--no-install');

const host = `${process.platform}-${process.arch}`;

/** Where each npm package puts the binary for this platform (its optional dependency). */
const BUN_PACKAGES = {
  'linux-x64': '@oven/bun-linux-x64/bin/bun',
  'linux-arm64': '@oven/bun-linux-aarch64/bin/bun',
  'darwin-x64': '@oven/bun-darwin-x64/bin/bun',
  'darwin-arm64': '@oven/bun-darwin-aarch64/bin/bun',
  'win32-x64': '@oven/bun-windows-x64/bin/bun.exe',
};
const DENO_PACKAGES = {
  'linux-x64': '@deno/linux-x64-glibc/deno',
  'linux-arm64': '@deno/linux-arm64-glibc/deno',
  'darwin-x64': '@deno/darwin-x64/deno',
  'darwin-arm64': '@deno/darwin-arm64/deno',
  'win32-x64': '@deno/win32-x64/deno.exe',
};

const RUNTIMES = [
  {
    name: 'node',
    binary: () => process.execPath,
    version: (bin) => execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim(),
    cmd: (file) => [file],
  },
  {
    name: 'bun',
    npm: `bun@${BUN_VERSION}`,
    binary: () => BUN_PACKAGES[host] && join(PREFIX, 'node_modules', BUN_PACKAGES[host]),
    version: (bin) => execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim(),
    cmd: (file) => [file],
  },
  {
    name: 'deno',
    npm: `deno@${DENO_VERSION}`,
    binary: () => DENO_PACKAGES[host] && join(PREFIX, 'node_modules', DENO_PACKAGES[host]),
    version: (bin) => execFileSync(bin, ['--version'], { encoding: 'utf8' }).split('\n')[0].trim(),
    // Reads the package and the model; env for OXINFER_NATIVE_PATH and friends; ffi to dlopen
    // the napi addon.
    cmd: (file) => ['run', '--no-prompt', '--allow-read', '--allow-env', '--allow-ffi', file],
    env: { DENO_DIR: join(PREFIX, 'deno-dir'), NO_COLOR: '1' },
  },
].filter((r) => !only || only.includes(r.name));

function installRuntimes() {
  const wanted = RUNTIMES.filter((r) => r.npm);
  const missing = wanted.filter((r) => {
    const bin = r.binary();
    if (!bin || !existsSync(bin)) return true;
    try {
      return !r.version(bin).includes(r.npm.split('@')[1]);
    } catch {
      return true;
    }
  });
  if (!install || missing.length === 0) return {};
  mkdirSync(PREFIX, { recursive: true });
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const res = spawnSync(
    npm,
    ['install', '--prefix', PREFIX, '--ignore-scripts', '--no-save', '--no-audit', '--no-fund', ...missing.map((r) => r.npm)],
    { cwd: PREFIX, encoding: 'utf8', timeout: 300_000, shell: process.platform === 'win32' },
  );
  if (res.status === 0) return {};
  const why = `npm install ${missing.map((r) => r.npm).join(' ')} failed: ${tail(res.stderr || String(res.error), 600)}`;
  return Object.fromEntries(missing.map((r) => [r.name, why]));
}

function tail(text, n) {
  const t = (text ?? '').trim();
  return t.length > n ? `…${t.slice(-n)}` : t;
}

// --- The programs each runtime runs. Each prints one line: SMOKE <json>. ---

const CJS_PROGRAM = `
const { readFileSync } = require('node:fs');
const ROOT = ${JSON.stringify(ROOT)};
const ox = require(ROOT + '/dist/cjs/index.js');
const { loadSileroVad } = require(ROOT + '/dist/cjs/vad.js');
const checks = {};
function assert(cond, what) { if (!cond) throw new Error(what); }
async function check(name, f) {
  try { await f(); checks[name] = 'pass'; }
  catch (e) { checks[name] = 'fail: ' + (e && e.stack ? e.stack.split('\\n').slice(0, 3).join(' | ') : String(e)); }
}
(async () => {
  const ADD = ROOT + '/.cache/fixtures/add.onnx';
  let vad = null;
  await check('add', async () => {
    const m = await ox.TractModel.load(ADD);
    const out = await m.run({ a: new Float32Array([1.5]), b: new Float32Array([2.25]) });
    assert(out.c.data instanceof Float32Array, 'output is not a Float32Array: ' + Object.prototype.toString.call(out.c.data));
    assert(out.c.data.length === 1 && out.c.data[0] === 3.75, 'run: 1.5 + 2.25 gave ' + out.c.data[0]);
    assert(JSON.stringify(out.c.shape) === '[1]', 'shape ' + JSON.stringify(out.c.shape));
    const s = m.runSync({ a: new Float32Array([-4]), b: { data: new Float32Array([1]), shape: [1] } });
    assert(s.c.data[0] === -3, 'runSync: -4 + 1 gave ' + s.c.data[0]);
    assert(/^[0-9a-f]{64}$/.test(m.sha256), 'sha256 ' + m.sha256);
    await m.dispose();
  });
  await check('addFromBytes', async () => {
    const m = await ox.TractModel.load(new Uint8Array(readFileSync(ADD)), { threads: 1 });
    const out = await m.run({ a: new Float32Array([10]), b: new Float32Array([0.5]) });
    assert(out.c.data[0] === 10.5, 'bytes: 10 + 0.5 gave ' + out.c.data[0]);
  });
  await check('errors', async () => {
    const m = await ox.TractModel.load(ADD);
    // A shape error raised by the native layer, mapped to its class.
    let e1;
    try { await m.run({ a: { data: new Float32Array(2), shape: [2] }, b: new Float32Array([1]) }); } catch (e) { e1 = e; }
    assert(e1 instanceof ox.InputShapeError && e1.code === 'ERR_INPUT_SHAPE', 'shape error: ' + (e1 && e1.code) + ' ' + (e1 && e1.message));
    let e2;
    try { await ox.TractModel.load(ROOT + '/no-such-model.onnx'); } catch (e) { e2 = e; }
    assert(e2 instanceof ox.ModelLoadError && e2.code === 'ERR_MODEL_LOAD', 'load error: ' + (e2 && e2.code));
    const ac = new AbortController();
    ac.abort();
    let e3;
    try { await m.run({ a: new Float32Array([1]), b: new Float32Array([1]) }, { signal: ac.signal }); } catch (e) { e3 = e; }
    assert(e3 instanceof ox.AbortedError, 'abort: ' + (e3 && e3.code));
    const again = await m.run({ a: new Float32Array([1]), b: new Float32Array([1]) });
    assert(again.c.data[0] === 2, 'run after errors gave ' + again.c.data[0]);
  });
  await check('vad', async () => {
    const model = await loadSileroVad(ROOT + '/models/silero_vad_v5.onnx', { threads: 1 });
    const session = model.session();
    const probs = [];
    for (let f = 0; f < 6; f++) {
      const x = new Float32Array(576);
      for (let i = 0; i < x.length; i++) x[i] = f < 2 ? 0 : 0.3 * Math.sin((f * 576 + i) * 2 * Math.PI * 220 / 16000);
      const { output } = await session.run(x);
      probs.push(output.data[0]);
    }
    assert(probs.every((p) => p >= 0 && p <= 1), 'probabilities out of [0, 1]: ' + probs);
    vad = probs;
  });
  console.log('SMOKE ' + JSON.stringify({ checks, vad }));
})().catch((e) => { console.log('SMOKE ' + JSON.stringify({ checks, fatal: String(e && e.stack || e) })); });
`;

const ESM_PROGRAM = `
const ROOT = ${JSON.stringify(ROOT)};
const checks = {};
try {
  const { TractModel, OxinferError, default: cjs } = await import(ROOT + '/dist/esm/index.mjs');
  const m = await TractModel.load(ROOT + '/.cache/fixtures/add.onnx');
  const out = await m.run({ a: new Float32Array([2]), b: new Float32Array([3]) });
  if (out.c.data[0] !== 5) throw new Error('2 + 3 gave ' + out.c.data[0]);
  if (cjs.OxinferError !== OxinferError) throw new Error('the ESM and CommonJS entries give different classes');
  checks.esm = 'pass';
} catch (e) {
  checks.esm = 'fail: ' + (e && e.stack ? e.stack.split('\\n').slice(0, 3).join(' | ') : String(e));
}
console.log('SMOKE ' + JSON.stringify({ checks }));
`;

function runProgram(runtime, bin, file) {
  const res = spawnSync(bin, runtime.cmd(file), {
    cwd: WORK,
    encoding: 'utf8',
    timeout: TIMEOUT_MS,
    env: { ...process.env, ...runtime.env },
  });
  const line = (res.stdout ?? '').split('\n').find((l) => l.startsWith('SMOKE '));
  if (line) {
    const parsed = JSON.parse(line.slice(6));
    if (parsed.fatal) parsed.error = parsed.fatal;
    return parsed;
  }
  const how = res.error ? String(res.error) : res.signal ? `killed by ${res.signal}` : `exit code ${res.status}`;
  return { checks: {}, error: `${how}: ${tail(`${res.stderr}\n${res.stdout}`, 1500)}` };
}

// --- Main ---

const installErrors = installRuntimes();
mkdirSync(WORK, { recursive: true });
const cjsFile = join(WORK, 'smoke.cjs');
const esmFile = join(WORK, 'smoke.mjs');
writeFileSync(cjsFile, CJS_PROGRAM);
writeFileSync(esmFile, ESM_PROGRAM);

const results = [];
let baselineVad = null;
for (const runtime of RUNTIMES) {
  const entry = { name: runtime.name, version: null, installed: false, pass: null, checks: {}, error: null };
  results.push(entry);
  const bin = runtime.binary();
  if (!bin) {
    entry.error = `no ${runtime.name} package known for ${host}`;
    continue;
  }
  if (!existsSync(bin)) {
    entry.error = installErrors[runtime.name] ?? `${bin} not found${install ? '' : ' (--no-install)'}`;
    continue;
  }
  try {
    entry.version = runtime.version(bin);
  } catch (e) {
    entry.error = `${bin} --version failed: ${tail(String(e.stderr || e.message), 600)}`;
    continue;
  }
  entry.installed = true;
  const started = Date.now();
  const cjs = runProgram(runtime, bin, cjsFile);
  const esm = runProgram(runtime, bin, esmFile);
  entry.checks = { ...cjs.checks, ...esm.checks };
  for (const name of ['add', 'addFromBytes', 'errors', 'vad', 'esm']) entry.checks[name] ??= 'not run';
  if (cjs.vad) {
    if (runtime.name === 'node') baselineVad = cjs.vad;
    else if (baselineVad) {
      const diff = Math.max(...cjs.vad.map((p, i) => Math.abs(p - baselineVad[i])));
      if (!(diff <= 1e-5)) entry.checks.vad = `fail: probabilities differ from Node's by ${diff}: ${cjs.vad} vs ${baselineVad}`;
    }
  }
  const errors = [cjs.error, esm.error].filter(Boolean);
  const failed = Object.entries(entry.checks).filter(([, v]) => v !== 'pass');
  entry.pass = failed.length === 0;
  if (errors.length) entry.error = errors.join(' || ');
  else if (failed.length) entry.error = failed.map(([k, v]) => `${k}: ${v}`).join(' || ');
  entry.ms = Date.now() - started;
}

const summary = {
  platform: host,
  pins: { bun: BUN_VERSION, deno: DENO_VERSION },
  pass: results.every((r) => !r.installed || r.pass),
  runtimes: results,
};
const json = JSON.stringify(summary, null, 2);
console.log(json);
if (reportFile) writeFileSync(reportFile, `${json}\n`);
process.exit(summary.pass ? 0 : 1);
