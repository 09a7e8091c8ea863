import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers';

// The published types as a consumer sees them: test/consumer/ imports 'oxinfer' (resolved
// through package.json "exports" to dist/ types; `npm run test:ts` builds them first) from
// CommonJS (consumer.ts) and ESM (consumer.mts), under strict settings and without
// skipLibCheck, using every public export; its `@ts-expect-error` lines prove wrong usage is
// rejected (tsc reports an unused @ts-expect-error as an error).
describe('TypeScript consumer', () => {
  it('type-checks against the built declarations', () => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const res = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'test', 'consumer', 'tsconfig.json')], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(`${res.stdout}${res.stderr}`.trim()).toBe('');
    expect(res.status).toBe(0);
  });
});
