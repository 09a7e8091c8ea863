/** Timing and summary statistics: one job, measuring. */

/** Idle time before each timed repetition (see `interleave`). */
export const SETTLE_MS = 30;

export const settle = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Milliseconds taken by `fn()` (awaited when it returns a Promise; sync work is not awaited). */
export async function timeMs(fn) {
  const t0 = process.hrtime.bigint();
  const r = fn();
  if (r && typeof r.then === 'function') await r;
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Median (mean of the two middle values for even counts), min and max of the samples. */
export function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { median: NaN, min: NaN, max: NaN, n: 0, samples: [] };
  const median = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { median, min: s[0], max: s[n - 1], n, samples: [...samples] };
}

/**
 * Repetitions of several contestants, interleaved (A, B, C, A, B, C, ...) so that drift in the
 * machine's state (a noisy neighbour, frequency changes) hits every contestant alike.
 * Each contestant: { key, warmup(): Promise|void, rep(): Promise<number>|number } where rep
 * returns the repetition's value in the case's unit. Returns { key: summary }.
 *
 * Between two repetitions the process idles for `settleMs`: engines' pool threads spin for a
 * while after their work (onnxruntime's intra-op threads do by default, rayon's and tract's
 * briefly), and without the pause that spinning takes cores from whichever contestant runs next.
 */
export async function interleave(contestants, reps, { settleMs = SETTLE_MS } = {}) {
  for (const c of contestants) await c.warmup?.();
  const values = Object.fromEntries(contestants.map((c) => [c.key, []]));
  for (let r = 0; r < reps; r++) {
    for (const c of contestants) {
      await settle(settleMs);
      values[c.key].push(await c.rep());
    }
  }
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, summarize(v)]));
}

/**
 * How many calls make one repetition last about `targetMs`, from the time of a few calls
 * (clamped to [min, max]).
 */
export async function calibrate(fn, targetMs, { probe = 3, min = 1, max = 100000 } = {}) {
  const ms = await timeMs(async () => {
    for (let i = 0; i < probe; i++) await fn();
  });
  const per = Math.max(ms / probe, 1e-4);
  return Math.min(max, Math.max(min, Math.round(targetMs / per)));
}
