/**
 * When `run()` may execute on the calling thread instead of the libuv pool.
 *
 * A hop to the pool and back costs 20-30 µs of latency on an idle machine (a pool thread's
 * wake-up, then the event loop's), 60-100 µs on a loaded one: more than a small model takes to
 * run. So for each input-shape signature the policy learns what a run costs and lets runs that
 * measured under `limitUs` execute inline: the caller still gets a Promise, the event loop is
 * held for at most about `limitUs` per run, and larger runs never leave the pool.
 *
 * The policy never blocks for an unknown cost: the first run of a signature goes to the pool,
 * and only a signature whose pool run came back within 1 ms (end to end, so its engine time is
 * below that) is tried inline, measured (the first inline run is a warm-up and not counted;
 * the next MIN_SAMPLES runs all stay inline, so one preempted run cannot decide), and kept
 * inline while the median of its recent costs stays under the limit. A signature
 * measured above the limit goes back to the pool and is measured afresh after 64 pool runs.
 *
 * Awaiting a run that went inline continues in a microtask of the same event-loop turn, so a
 * loop of `await model.run(...)` would hold the loop for as long as it lasts: inline runs of
 * every model on the thread share a budget per turn ([`turn`]), and once it is spent the next
 * inline run waits for the loop's next turn (setImmediate) before it starts.
 */
import { setImmediate } from 'node:timers';

/**
 * Inline µs one event-loop turn may spend, across every model of this thread, before inline
 * runs wait for the next turn: timers and I/O get in at least every ~1 ms (plus one run).
 */
export const TURN_BUDGET_US = 1000;

/** The inline time spent in the current event-loop turn. */
class TurnBudget {
  #spentUs = 0;
  #next: Promise<void> | undefined;

  /** Whether this turn's budget is used up: the next inline run should wait for `next()`. */
  get spent(): boolean {
    return this.#spentUs >= TURN_BUDGET_US;
  }

  /** Records `us` of inline work in this turn. */
  spend(us: number): void {
    this.next(); // the turn ends at the setImmediate that next() queues once per turn
    this.#spentUs += us;
  }

  /** Settles in the event loop's next check phase, when the budget starts afresh. */
  next(): Promise<void> {
    this.#next ??= new Promise<void>((resolve) => {
      setImmediate(() => {
        this.#spentUs = 0;
        this.#next = undefined;
        resolve();
      });
    });
    return this.#next;
  }
}

/** The event loop is per thread, and so is this module's instance (workers load their own). */
export const turn = new TurnBudget();

/** Runs per signature whose cost is remembered (the median of these decides). */
const WINDOW = 8;
/** Measured inline runs before their median may send a shape back to the pool. */
const MIN_SAMPLES = 3;
/** Signatures remembered per model; beyond this, new shapes go to the pool. */
const MAX_SIGNATURES = 64;
/** A shape measured above the limit is measured again after this many pool runs. */
const REPROBE_AFTER = 64;

interface Costs {
  /** Inline run costs in µs, most recent last (at most WINDOW). */
  sync: number[];
  /** Their median, kept up to date by inlineRan (read on every run). */
  syncMedianUs: number;
  /** Whether the first inline run, which pays for cold caches and JIT warm-up, has happened. */
  warmed: boolean;
  /** The last end-to-end pool run time in µs. */
  pooledUs: number;
  /** Pool runs since the last inline one. */
  pooledSince: number;
}

export type Placement = 'inline' | 'pool';

export class InlinePolicy {
  readonly limitUs: number;
  readonly #probeCeilingUs: number;
  readonly #costs = new Map<string, Costs>();

  constructor(limitUs: number) {
    this.limitUs = limitUs;
    // A probe blocks for at most the engine time, which the pool round trip bounds. Round trips
    // of a tiny model measured 20 µs on one VM and 60-150 µs on another, so the probe is allowed
    // for any shape whose round trip stayed under 1 ms (or twice the limit): at most that, a few
    // runs once per REPROBE_AFTER runs.
    this.#probeCeilingUs = Math.max(1000, 2 * limitUs);
  }

  /** Where the next run of this signature goes. */
  place(key: string): Placement {
    const c = this.#costs.get(key);
    if (c === undefined) return 'pool';
    if (c.syncMedianUs <= this.limitUs) return 'inline';
    if (c.pooledUs > this.#probeCeilingUs) return 'pool';
    if (c.pooledSince >= REPROBE_AFTER) {
      // Measure afresh: the old samples may come from a busier moment.
      c.sync = [];
      c.syncMedianUs = Infinity;
      c.pooledSince = 0;
    }
    // Too few samples yet for a median that one preempted run cannot sway: keep measuring.
    return c.sync.length < MIN_SAMPLES ? 'inline' : 'pool';
  }

  /** Records the measured cost of an inline run. */
  inlineRan(key: string, us: number): void {
    const c = this.#entry(key);
    if (!c) return;
    c.pooledSince = 0;
    if (!c.warmed) {
      c.warmed = true; // not representative: measure again
      return;
    }
    c.sync.push(us);
    if (c.sync.length > WINDOW) c.sync.shift();
    c.syncMedianUs = median(c.sync);
  }

  /** Records the end-to-end time of a pool run (an upper bound of its engine time). */
  pooledRan(key: string, us: number): void {
    const c = this.#entry(key);
    if (!c) return;
    c.pooledUs = us;
    c.pooledSince++;
  }

  #entry(key: string): Costs | undefined {
    let c = this.#costs.get(key);
    if (c === undefined && this.#costs.size < MAX_SIGNATURES) {
      c = { sync: [], syncMedianUs: Infinity, warmed: false, pooledUs: Infinity, pooledSince: 0 };
      this.#costs.set(key, c);
    }
    return c;
  }
}

/** Scratch for median: it runs on every inline run, where a copy and a comparator sort cost ~3 µs. */
const SORTED = new Float64Array(WINDOW);

/** The median of at most WINDOW values (the upper one of an even count), by insertion sort. */
function median(xs: readonly number[]): number {
  const n = Math.min(xs.length, WINDOW);
  for (let i = 0; i < n; i++) {
    const v = xs[i]!;
    let j = i;
    for (; j > 0 && SORTED[j - 1]! > v; j--) SORTED[j] = SORTED[j - 1]!;
    SORTED[j] = v;
  }
  return SORTED[n >> 1]!;
}

/** The shape signature of resolved feeds: the same shapes cost the same on a fixed plan. */
export function shapeKey(feeds: ReadonlyArray<{ shape: readonly number[] }>): string {
  let key = '';
  for (const f of feeds) key += f.shape.join(',') + ';';
  return key;
}

/**
 * Default `inlineUnderUs`. A pool round trip costs 40-150 µs on the shared VMs of bench/ (a
 * pool thread's wake-up, then the event loop's), so a run under half a millisecond loses a
 * tenth to a half of its time to it. One inline run holds the event loop for at most about
 * this, and a turn for at most TURN_BUDGET_US plus one run. Small CNNs (a batch of 8 32x32
 * images: ~250 µs), Silero VAD frames (~80 µs) and microsecond models qualify; encoders
 * (milliseconds) never do.
 */
export const DEFAULT_INLINE_UNDER_US = 500;
