/**
 * The queue behind the Batcher and the EmbedBatcher: requests that arrive within `maxDelayMs`
 * of each other are taken together, up to `maxBatch` rows, and handed to the subclass's
 * `dispatch` as one batch; a bounded queue (QueueFullError beyond `maxQueue`), per-request
 * AbortSignal, and `close()` that runs what is queued and waits for every batch.
 */
import { DisposedError, OxinferError, QueueFullError } from './errors';
import { abortedError, throwIfAborted, watch } from './signal';

export interface CoalesceOptions {
  /** Most rows in one engine call. Default 32. */
  maxBatch?: number;
  /** Longest wait for more requests after the first one arrives. Default 2 ms. */
  maxDelayMs?: number;
  /** Most requests waiting; beyond it the call rejects with QueueFullError. Default 1024. */
  maxQueue?: number;
}

/** One caller's request: its input, its row count, and how to settle it. */
export interface Queued<In, Out> {
  input: In;
  rows: number;
  resolve: (out: Out) => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
  /** Stops watching `signal` (once the request is settled). */
  unwatch?: () => void;
}

export abstract class Coalescer<In, Out> {
  readonly maxBatch: number;
  readonly maxDelayMs: number;
  readonly maxQueue: number;
  #name: string;
  #queue: Array<Queued<In, Out>> = [];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #inFlight = new Set<Promise<void>>();

  /** `name` is the class's, for messages. */
  protected constructor(name: string, options: CoalesceOptions) {
    this.#name = name;
    this.maxBatch = positive(name, 'maxBatch', options.maxBatch ?? 32);
    this.maxDelayMs = nonNegativeMs(name, 'maxDelayMs', options.maxDelayMs ?? 2);
    this.maxQueue = positive(name, 'maxQueue', options.maxQueue ?? 1024);
  }

  /** Requests waiting for a batch. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Runs what is queued, then refuses new requests; resolves when every batch has returned. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#queue.length > 0) this.#flush();
    await Promise.all(this.#inFlight);
  }

  /** Whether `b` may share a batch with `a`, the batch's first request. */
  protected abstract compatible(a: Queued<In, Out>, b: Queued<In, Out>): boolean;

  /** Runs a batch (none of it aborted when it was taken) and settles every request in it. */
  protected abstract dispatch(batch: Array<Queued<In, Out>>): Promise<void>;

  /**
   * Queues a request once `prepare` (validation, on the caller's stack: a bad request throws
   * before it is queued) gives its input and rows; resolves with its own result.
   */
  protected enqueue(prepare: () => { input: In; rows: number }, signal: AbortSignal | undefined): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      throwIfAborted(signal);
      if (this.#closed) throw new DisposedError(`the ${this.#name} was closed`);
      if (this.#queue.length >= this.maxQueue) {
        throw new QueueFullError(`the ${this.#name} queue is full (${this.maxQueue} requests waiting)`);
      }
      const request: Queued<In, Out> = { ...prepare(), resolve, reject, signal };
      if (signal) {
        // Aborted while queued: leave the queue now. Aborted once dispatched: reject now and
        // drop the rows when the batch returns.
        request.unwatch = watch(signal, () => {
          const at = this.#queue.indexOf(request);
          if (at >= 0) this.#queue.splice(at, 1);
          reject(abortedError(signal));
        });
      }
      this.#queue.push(request);
      const rows = this.#queue.reduce((n, r) => n + r.rows, 0);
      if (rows >= this.maxBatch) this.#flush();
      else this.#timer ??= setTimeout(() => this.#flush(), this.maxDelayMs);
    });
  }

  /** Takes up to maxBatch rows of compatible requests off the queue and runs them. */
  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#queue.length === 0) return;
    const head = this.#queue[0]!;
    const batch: Array<Queued<In, Out>> = [];
    let rows = 0;
    for (let i = 0; i < this.#queue.length && rows < this.maxBatch; ) {
      const r = this.#queue[i]!;
      if (batch.length > 0 && (rows + r.rows > this.maxBatch || !this.compatible(head, r))) {
        i++;
        continue;
      }
      batch.push(r);
      rows += r.rows;
      this.#queue.splice(i, 1);
    }
    const live = batch.filter((r) => !r.signal?.aborted);
    const done = (live.length > 0 ? this.dispatch(live) : Promise.resolve()).finally(() => this.#inFlight.delete(done));
    this.#inFlight.add(done);
    if (this.#queue.length > 0) this.#timer = setTimeout(() => this.#flush(), this.maxDelayMs);
  }
}

/**
 * Runs `batch` as one engine call through `call`, which gives one result per request; when it
 * fails for a batch of several, each request runs alone through `alone`, so one bad request
 * (data that does not fit its shape, a sequence too long for the model) fails only its own
 * caller. Costs a second pass only when a batch fails. A disposed model fails them all.
 *
 * `call` gets a signal that aborts once every request of the batch has aborted (their callers
 * were rejected at once): work not yet started is then dropped instead of run for no one.
 */
export async function runOrEachAlone<In, Out>(
  batch: Array<Queued<In, Out>>,
  call: (signal: AbortSignal) => Promise<Array<() => Out>>,
  alone: (r: Queued<In, Out>) => Promise<Out>,
): Promise<void> {
  const all = abortedWithAll(batch);
  let results: Array<() => Out>;
  try {
    results = await call(all.signal);
  } catch (e) {
    const dropped = e instanceof OxinferError && e.code === 'ERR_ABORTED' && all.signal.aborted;
    if (dropped || batch.length === 1 || (e instanceof OxinferError && e.code === 'ERR_DISPOSED')) {
      for (const r of batch) settle(r, () => { throw e; });
    } else {
      await Promise.all(
        batch
          .filter((r) => !r.signal?.aborted)
          .map(async (r) => {
            try {
              const out = await alone(r);
              settle(r, () => out);
            } catch (err) {
              settle(r, () => { throw err; });
            }
          }),
      );
    }
    return;
  } finally {
    all.release();
  }
  results.forEach((result, i) => settle(batch[i]!, result));
}

/** A signal that aborts when every request of `batch` has aborted; `release` stops listening. */
function abortedWithAll<In, Out>(batch: Array<Queued<In, Out>>): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const signals = batch.map((r) => r.signal);
  if (signals.some((s) => s === undefined)) return { signal: controller.signal, release: () => undefined };
  let left = batch.length;
  const one = () => {
    if (--left === 0) controller.abort();
  };
  const unwatch = signals.map((s) => watch(s!, one));
  return { signal: controller.signal, release: () => unwatch.forEach((f) => f()) };
}

/** Settles `r` with `result()` (or what it throws); an aborted request was already rejected. */
export function settle<In, Out>(r: Queued<In, Out>, result: () => Out): void {
  r.unwatch?.();
  if (r.signal?.aborted) return; // already rejected; an aborted request never gets a result
  try {
    r.resolve(result());
  } catch (e) {
    r.reject(e);
  }
}

function positive(name: string, option: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} option ${option} must be a positive integer, got ${n}`);
  return n;
}

function nonNegativeMs(name: string, option: string, n: number): number {
  if (!Number.isFinite(n) || n < 0) {
    throw new RangeError(`${name} option ${option} must be a non-negative number of milliseconds, got ${n}`);
  }
  return n;
}
