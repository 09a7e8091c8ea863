// Packs oxinfer the way it is published and installs it as a user would: from tarballs only,
// into a fresh project, with install scripts blocked and no Rust toolchain on PATH. Then runs
// an inference from ESM and from CommonJS, and the demo, and records the installed sizes.
// Both layouts are checked: the main package + its per-platform package (napi-rs), and the
// "fat" main tarball with prebuilds/ (prebuildify, for Electron builds and offline bundles).
//
//   node scripts/pack-check.mjs [--report FILE]
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const root = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const triple = 'linux-x64-gnu'; // the one platform built here
const binary = join(root, `oxinfer.${triple}.node`);
const fixture = join(root, '.cache', 'fixtures', 'add.onnx');
const MAX_PLATFORM_BYTES = 30 * 1024 * 1024;
const reportAt = process.argv.includes('--report') ? process.argv[process.argv.indexOf('--report') + 1] : undefined;

for (const [path, fix] of [
  [binary, 'npm run build'],
  [join(root, 'dist', 'cjs', 'index.js'), 'npm run build:ts'],
  [fixture, 'node scripts/fixtures.mjs'],
]) {
  if (!existsSync(path)) throw new Error(`pack-check: ${path} is missing; run \`${fix}\` first`);
}

const work = mkdtempSync(join(tmpdir(), 'oxinfer-pack-'));
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
/** Packs `dir` into a folder of its own (the main and fat tarballs share a file name). */
const pack = (dir) => {
  const dest = mkdtempSync(join(work, 'tgz-'));
  const out = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dest], { cwd: dir }));
  return { file: join(dest, out[0].filename), packed: out[0].size, unpacked: out[0].unpackedSize };
};

function duBytes(dir) {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    total += entry.isDirectory() ? duBytes(p) : statSync(p).size;
  }
  return total;
}

/** The main package as published: no dev dependencies, no scripts, the given files. */
function stageMain(dir, { prebuilds, optional }) {
  mkdirSync(dir, { recursive: true });
  const files = ['dist', 'index.d.ts', 'models', 'assets/speech.wav', 'README.md'];
  for (const f of files) cpSync(join(root, f), join(dir, f), { recursive: true });
  const manifest = { ...pkg, files: [...files] };
  delete manifest.devDependencies;
  delete manifest.scripts;
  if (optional) {
    // What `napi prepublish` adds at release time: every declared platform package.
    manifest.optionalDependencies = Object.fromEntries(
      readdirSync(join(root, 'npm'))
        .filter((d) => !d.endsWith('-cuda'))
        .map((d) => [`oxinfer-${d}`, pkg.version]),
    );
  }
  if (prebuilds) {
    const target = join(dir, 'prebuilds', 'linux-x64');
    mkdirSync(target, { recursive: true });
    // node-gyp-build's tags: N-API, glibc.
    cpSync(binary, join(target, 'oxinfer.napi.glibc.node'));
    manifest.files.push('prebuilds');
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
}

function stagePlatform(dir) {
  cpSync(join(root, 'npm', triple), dir, { recursive: true });
  cpSync(binary, join(dir, `oxinfer.${triple}.node`));
}

/**
 * PATH without the folders that hold cargo or rustc, and no rustup/cargo variables. A folder
 * that also holds node (a system /usr/bin) stays, behind stubs that fail as a missing tool would.
 */
function toolchainFreeEnv() {
  const stubs = join(work, 'no-toolchain');
  mkdirSync(stubs, { recursive: true });
  for (const tool of ['cargo', 'rustc', 'rustup']) {
    writeFileSync(join(stubs, tool), `#!/bin/sh\necho "${tool}: not available in this check" >&2\nexit 127\n`, { mode: 0o755 });
  }
  const rust = (d) => existsSync(join(d, 'cargo')) || existsSync(join(d, 'rustc'));
  const path = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((d) => d && (!rust(d) || existsSync(join(d, 'node'))));
  const env = { ...process.env, PATH: [stubs, ...path].join(delimiter), npm_config_ignore_scripts: 'true' };
  for (const k of Object.keys(env)) if (/^(CARGO|RUSTUP|RUSTC)/.test(k)) delete env[k];
  return env;
}

const SMOKE_CJS = `
const { TractModel, nativeAddonPath } = require('oxinfer');
(async () => {
  const m = await TractModel.load(${JSON.stringify(fixture)});
  const out = await m.run({ a: new Float32Array([2]), b: new Float32Array([40]) });
  console.log(JSON.stringify({ sum: out.c.data[0], addon: nativeAddonPath() }));
})().catch((e) => { console.error(e); process.exit(1); });`;
const SMOKE_ESM = `
import { TractModel } from 'oxinfer';
const m = await TractModel.load(${JSON.stringify(fixture)});
const out = m.runSync({ a: new Float32Array([1]), b: new Float32Array([41]) });
console.log(JSON.stringify({ sum: out.c.data[0] }));`;

function installAndRun(name, tarballs, overrides) {
  const project = join(work, name);
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, overrides }, null, 2));
  const env = toolchainFreeEnv();
  let cargoVisible = true;
  try {
    run('cargo', ['--version'], { env });
  } catch {
    cargoVisible = false;
  }
  if (cargoVisible) throw new Error('pack-check: cargo is still on PATH for the consumer project');
  run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--offline=false', ...tarballs], { cwd: project, env });
  const cjs = JSON.parse(run(process.execPath, ['-e', SMOKE_CJS], { cwd: project, env }));
  const esm = JSON.parse(run(process.execPath, ['--input-type=module', '-e', SMOKE_ESM], { cwd: project, env }));
  const demo = run(process.execPath, [join(project, 'node_modules', 'oxinfer', 'dist', 'cjs', 'cli', 'main.js'), 'demo'], { cwd: project, env });
  if (cjs.sum !== 42 || esm.sum !== 42) throw new Error(`pack-check (${name}): wrong sums ${JSON.stringify({ cjs, esm })}`);
  const segments = /Speech segments \((\d+)\)/.exec(demo)?.[1];
  if (segments !== '4') throw new Error(`pack-check (${name}): the demo found ${segments} segments:\n${demo}`);
  const modules = join(project, 'node_modules');
  const sizes = Object.fromEntries(
    readdirSync(modules)
      .filter((d) => d.startsWith('oxinfer'))
      .map((d) => [d, duBytes(join(modules, d))]),
  );
  return { addon: cjs.addon.replace(project, '<project>'), sizes, cjs: 'ok', esm: 'ok', demo: `${segments} segments` };
}

try {
  stagePlatform(join(work, 'stage-platform'));
  const platform = pack(join(work, 'stage-platform'));
  stageMain(join(work, 'stage-main'), { prebuilds: false, optional: true });
  const main = pack(join(work, 'stage-main'));
  stageMain(join(work, 'stage-fat'), { prebuilds: true, optional: false });
  const fat = pack(join(work, 'stage-fat'));

  // Nothing is published yet, so every optional platform package resolves to a local tarball:
  // the real one for this platform, and for the platforms not built here a stub with their
  // os/cpu fields (npm skips it, as it skips the real one on a foreign platform).
  const overrides = { [`oxinfer-${triple}`]: `file:${platform.file}` };
  for (const d of readdirSync(join(root, 'npm')).filter((d) => d !== triple && !d.endsWith('-cuda'))) {
    const stub = join(work, `stub-${d}`);
    mkdirSync(stub);
    cpSync(join(root, 'npm', d, 'package.json'), join(stub, 'package.json'));
    overrides[`oxinfer-${d}`] = `file:${pack(stub).file}`;
  }
  const split = installAndRun('split', [main.file], overrides);
  const prebuilt = installAndRun('prebuilds', [fat.file], {});
  if (!split.addon.includes(`oxinfer-${triple}`)) throw new Error(`split layout loaded ${split.addon}`);
  if (!prebuilt.addon.includes('prebuilds')) throw new Error(`fat layout loaded ${prebuilt.addon}`);
  const platformInstalled = split.sizes[`oxinfer-${triple}`];
  if (!(platformInstalled <= MAX_PLATFORM_BYTES)) {
    throw new Error(`oxinfer-${triple} installs ${platformInstalled} bytes, over the ${MAX_PLATFORM_BYTES} target`);
  }
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    tarballs: {
      [`oxinfer-${triple}`]: { packed: platform.packed, unpacked: platform.unpacked },
      oxinfer: { packed: main.packed, unpacked: main.unpacked },
      'oxinfer (fat, prebuilds/)': { packed: fat.packed, unpacked: fat.unpacked },
    },
    layouts: { split, prebuilds: prebuilt },
  };
  console.log(JSON.stringify(report, null, 2));
  if (reportAt) writeFileSync(reportAt, JSON.stringify(report, null, 2) + '\n');
} finally {
  rmSync(work, { recursive: true, force: true });
}
