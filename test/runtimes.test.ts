import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers';

// The built package under Bun and Deno, with Node as the baseline (scripts/runtime-smoke.mjs).
// The runtimes are the pinned npm packages bun@1.4.5 and deno@2.9.6, installed into
// .cache/runtimes/ on the first run (this needs the npm registry once; later runs reuse them).
//
// Today (linux-x64-gnu) all three pass every check: napi addons load in Bun (its own Node-API
// implementation) and in Deno (`--allow-ffi` lets it dlopen the .node file), the add fixture
// runs async and sync from a path and from bytes, native errors map to their classes, an
// aborted run rejects, Silero VAD gives the same probabilities as under Node, and the ESM entry
// imports. The ESM entry used to fail in Deno ("does not provide an export named 'default'":
// Deno treats dist/cjs/index.js outside node_modules as ESM unless --unstable-detect-cjs);
// scripts/build-esm.mjs now loads the CommonJS build with createRequire, which every runtime
// supports.

interface RuntimeResult {
  name: string;
  version: string | null;
  installed: boolean;
  pass: boolean | null;
  checks: Record<string, string>;
  error: string | null;
}

describe('other runtimes', () => {
  it('Node, Bun and Deno load the package and pass every smoke check', () => {
    const report = join(mkdtempSync(join(tmpdir(), 'oxinfer-runtimes-')), 'report.json');
    const res = spawnSync(process.execPath, [join(ROOT, 'scripts', 'runtime-smoke.mjs'), '--report', report], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 420_000,
    });
    const summary = JSON.parse(readFileSync(report, 'utf8')) as { pass: boolean; runtimes: RuntimeResult[] };
    const byName = Object.fromEntries(summary.runtimes.map((r) => [r.name, r]));
    for (const name of ['node', 'bun', 'deno']) {
      const r = byName[name];
      // Error text first, so a failure says which runtime broke and how.
      expect({ name, error: r ? r.error : 'missing from the report' }).toEqual({ name, error: null });
      expect(r!.installed).toBe(true);
      expect(r!.pass).toBe(true);
      expect(Object.keys(r!.checks).sort()).toEqual(['add', 'addFromBytes', 'errors', 'esm', 'vad']);
      for (const [check, result] of Object.entries(r!.checks)) expect(`${name} ${check}: ${result}`).toBe(`${name} ${check}: pass`);
    }
    expect(byName.bun!.version).toBe('1.4.5');
    expect(byName.deno!.version).toMatch(/^deno 2\.9\.6 /);
    expect(summary.pass).toBe(true);
    expect(res.status).toBe(0);
  }, 480_000);
});
