import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers';

// Packs the main and platform packages (and the fat prebuilds/ tarball), installs them into a
// fresh project with install scripts blocked and no Rust toolchain, and runs inferences from
// ESM and CommonJS there (scripts/pack-check.mjs throws on any failure).
describe('npm pack + install without a toolchain', () => {
  it('installs from tarballs and runs from both layouts', () => {
    const out = execFileSync(process.execPath, ['scripts/pack-check.mjs'], { cwd: ROOT, encoding: 'utf8' });
    const report = JSON.parse(out) as {
      layouts: Record<string, { addon: string; cjs: string; esm: string; demo: string; sizes: Record<string, number> }>;
    };
    expect(report.layouts.split!.addon).toContain('node_modules/oxinfer-linux-x64-gnu/');
    expect(report.layouts.prebuilds!.addon).toContain('node_modules/oxinfer/prebuilds/linux-x64/');
    for (const layout of Object.values(report.layouts)) {
      expect([layout.cjs, layout.esm, layout.demo]).toEqual(['ok', 'ok', '4 segments']);
    }
    expect(report.layouts.split!.sizes['oxinfer-linux-x64-gnu']).toBeLessThanOrEqual(30 * 1024 * 1024);
  }, 300_000);
});
