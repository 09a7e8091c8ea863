import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers';

// The short version of `npm run soak` (bench/soak.mjs): bounds are looser than the long run's
// 5% because a short run's RSS is noisier.
describe('soak (short)', () => {
  it('does not grow, agrees with sequential results under load, keeps the event loop free', () => {
    const out = execFileSync(
      process.execPath,
      ['--expose-gc', 'bench/soak.mjs', '--warmup', '50000', '--runs', '20000', '--cycles', '400', '--callers', '16', '--requests', '100'],
      { cwd: ROOT, encoding: 'utf8' },
    );
    const r = JSON.parse(out) as {
      runs: { growth: number };
      cycles: { growth: number };
      load: { mismatches: number; eventLoopMaxDelayMs: number };
    };
    expect(r.runs.growth).toBeLessThan(0.25);
    expect(r.cycles.growth).toBeLessThan(0.25);
    expect(r.load.mismatches).toBe(0);
    expect(r.load.eventLoopMaxDelayMs).toBeLessThan(100);
  }, 300_000);
});
