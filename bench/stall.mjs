/** Event-loop stall meter: one job, the longest gap between 1 ms timer ticks while work runs. */
import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * Runs `work()` (returns a Promise) while sampling the event loop with a 1 ms-resolution
 * monitorEventLoopDelay histogram and, independently, a 1 ms setInterval whose lateness is
 * recorded. Returns { totalMs, stallMs, intervalStallMs, result }:
 *   stallMs          histogram max: the longest time between two ticks of the 1 ms timer
 *                    (includes the 1 ms period itself, so an idle loop reads ~1 ms);
 *   intervalStallMs  longest gap between two setInterval(1) callbacks (same idea, JS side).
 */
export async function measureStall(work) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  let last = performance.now();
  let longestGap = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
  }, 1);
  // Both meters must be ticking before the work begins: the histogram records the time between
  // two ticks of its timer, so a stall before its first tick would go unseen. (No h.reset()
  // after that: it also forgets the last tick, hiding a stall that starts right away.)
  h.enable();
  await new Promise((r) => setTimeout(r, 10));
  last = performance.now();
  longestGap = 0;
  const t0 = performance.now();
  const result = await work();
  const totalMs = performance.now() - t0;
  // A last tick, so a stall right at the end is seen by the interval meter too.
  await new Promise((r) => setTimeout(r, 2));
  h.disable();
  clearInterval(tick);
  return { totalMs, stallMs: h.max / 1e6, intervalStallMs: longestGap, result };
}
