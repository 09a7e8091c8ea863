import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers';

// The short version of `npm run soak` (bench/soak.mjs): bounds are looser than the long run's
// 5% because a short run's RSS is noisier.
describe('soak (short)', () => {
  it('does not grow (also with one signal shared by every run), agrees with sequential results under load, keeps the event loop free', () => {
    const out = execFileSync(
      process.execPath,
      ['--expose-gc', 'bench/soak.mjs', '--warmup', '50000', '--runs', '20000', '--cycles', '400', '--callers', '16', '--requests', '100', '--signal-runs', '400000'],
      { cwd: ROOT, encoding: 'utf8' },
    );
    const r = JSON.parse(out) as {
      runs: { growth: number };
      signal: { growth: number };
      cycles: { growth: number };
      load: { mismatches: number; eventLoopMaxDelayMs: number };
    };
    expect(r.runs.growth).toBeLessThan(0.25);
    // One long-lived signal passed to every run: napi-rs's AbortSignal argument kept ~200 bytes
    // per run on it (+26% here over 400k runs, half of them through the Batcher); now flat.
    expect(r.signal.growth).toBeLessThan(0.1);
    expect(r.cycles.growth).toBeLessThan(0.25);
    expect(r.load.mismatches).toBe(0);
    expect(r.load.eventLoopMaxDelayMs).toBeLessThan(100);
  }, 300_000);
});
