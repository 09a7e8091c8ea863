/**
 * Batcher: dynamic micro-batching for services. Concurrent `run()` calls that arrive within
 * `maxDelayMs` of each other are stacked, up to `maxBatch` rows, into one engine call
 * (`runBatch`), and each caller gets its own rows back.
 *
 * Requests stack when every input has the same dims after the first. With `pad`, inputs whose
 * sizes differ along other dims (sequence length) are padded with the given value to the
 * longest in their group (requests of similar sizes: see bySize), and outputs are cut back to
 * each request's length. Padding is correct only for models that ignore padded positions (a
 * BERT encoder fed its attention mask): opt in per input.
 */
import { AbortedError, DisposedError, InputNameError, InputShapeError, OxinferError, QueueFullError } from './errors';
import { throwIfAborted } from './signal';
import {
  ARRAY_FOR_DTYPE,
  type Feeds,
  type Outputs,
  type TensorData,
  type TensorInput,
  isTypedArray,
} from './tensor';
import type { RunOptions, TractModel } from './tract-model';

export interface BatcherOptions {
  /** Most rows in one engine call. Default 32. */
  maxBatch?: number;
  /** Longest wait for more requests after the first one arrives. Default 2 ms. */
  maxDelayMs?: number;
  /** Most requests waiting; beyond it `run` rejects with QueueFullError. Default 1024. */
  maxQueue?: number;
  /** Inputs that may be padded along dims after the first, and their padding value. */
  pad?: Record<string, number | bigint>;
}

interface Request {
  feeds: Record<string, TensorInput>;
  rows: number;
  resolve: (o: Outputs) => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class Batcher {
  readonly maxBatch: number;
  readonly maxDelayMs: number;
  readonly maxQueue: number;
  #model: TractModel;
  #pad: Record<string, number | bigint>;
  #queue: Request[] = [];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #inFlight = new Set<Promise<void>>();

  constructor(model: TractModel, options: BatcherOptions = {}) {
    this.#model = model;
    this.maxBatch = positive('maxBatch', options.maxBatch ?? 32);
    this.maxDelayMs = nonNegativeMs('maxDelayMs', options.maxDelayMs ?? 2);
    this.maxQueue = positive('maxQueue', options.maxQueue ?? 1024);
    this.#pad = options.pad ?? {};
  }

  /** Requests waiting for a batch. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Queues one request; resolves with its own outputs once its batch has run. */
  run(feeds: Feeds, options: RunOptions = {}): Promise<Outputs> {
    return new Promise<Outputs>((resolve, reject) => {
      throwIfAborted(options.signal);
      if (this.#closed) throw new DisposedError('the Batcher was closed');
      if (this.#queue.length >= this.maxQueue) {
        throw new QueueFullError(`the Batcher queue is full (${this.maxQueue} requests waiting)`);
      }
      const normalized = this.#normalize(feeds);
      const request: Request = { ...normalized, resolve, reject, signal: options.signal };
      if (options.signal) {
        // Aborted while queued: leave the queue now. Aborted once dispatched: reject now and
        // drop the rows when the batch returns.
        request.onAbort = () => {
          const at = this.#queue.indexOf(request);
          if (at >= 0) this.#queue.splice(at, 1);
          reject(new AbortedError());
        };
        options.signal.addEventListener('abort', request.onAbort, { once: true });
      }
      this.#queue.push(request);
      const rows = this.#queue.reduce((n, r) => n + r.rows, 0);
      if (rows >= this.maxBatch) this.#flush();
      else this.#timer ??= setTimeout(() => this.#flush(), this.maxDelayMs);
    });
  }

  /** Runs what is queued, then refuses new requests; resolves when every batch has returned. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#queue.length > 0) this.#flush();
    await Promise.all(this.#inFlight);
  }

  #normalize(feeds: Feeds): { feeds: Record<string, TensorInput>; rows: number } {
    if (feeds === null || typeof feeds !== 'object' || isTypedArray(feeds)) {
      throw new InputNameError('Batcher.run takes an object of named inputs { name: { data, shape } }');
    }
    const out: Record<string, TensorInput> = {};
    let rows: number | undefined;
    for (const [name, value] of Object.entries(feeds)) {
      const input: TensorInput = isTypedArray(value)
        ? { data: value, shape: fixedShape(this.#model, name) }
        : (value as TensorInput);
      const first = Array.isArray(input.shape) ? input.shape[0] : undefined;
      if (typeof first !== 'number') {
        throw new InputShapeError(`input '${name}': the Batcher stacks on dim 0, so the shape needs one`);
      }
      rows ??= first;
      out[name] = input;
    }
    return { feeds: out, rows: rows ?? 0 };
  }

  /** Takes up to maxBatch rows of compatible requests off the queue and runs them. */
  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#queue.length === 0) return;
    const head = this.#queue[0]!;
    const batch: Request[] = [];
    let rows = 0;
    for (let i = 0; i < this.#queue.length && rows < this.maxBatch; ) {
      const r = this.#queue[i]!;
      if (batch.length > 0 && (rows + r.rows > this.maxBatch || !this.#compatible(head, r))) {
        i++;
        continue;
      }
      batch.push(r);
      rows += r.rows;
      this.#queue.splice(i, 1);
    }
    const done = this.#dispatch(batch).finally(() => this.#inFlight.delete(done));
    this.#inFlight.add(done);
    if (this.#queue.length > 0) this.#timer = setTimeout(() => this.#flush(), this.maxDelayMs);
  }

  #compatible(a: Request, b: Request): boolean {
    for (const [name, x] of Object.entries(a.feeds)) {
      const y = b.feeds[name];
      if (!y || y.data.constructor !== x.data.constructor || y.shape.length !== x.shape.length) return false;
      if (!(name in this.#pad) && x.shape.slice(1).some((d, i) => d !== y.shape[i + 1])) return false;
    }
    return Object.keys(a.feeds).length === Object.keys(b.feeds).length;
  }

  /**
   * Runs a batch as one engine call, or, when padding would stretch short requests to a long
   * one's size, as several calls of requests of similar sizes, side by side (see bySize).
   */
  async #dispatch(batch: Request[]): Promise<void> {
    const live = batch.filter((r) => !r.signal?.aborted);
    if (live.length === 0) return;
    // Side by side, as plain concurrent runs would be: one after the other, a group of short
    // requests left a core idle (16 requests of 16 to 128 tokens: 318 ms one by one).
    await Promise.all(bySize(live, Object.keys(this.#pad)).map((group) => this.#runGroup(group)));
  }

  /** One engine call for `live` (none aborted, at least one), padded to its longest. */
  async #runGroup(live: Request[]): Promise<void> {
    const padded = this.#padTo(live);
    let outs: Outputs[];
    try {
      outs = await this.#model.runBatch(padded.map((p) => p.feeds));
    } catch (e) {
      if (live.length === 1 || (e instanceof OxinferError && e.code === 'ERR_DISPOSED')) {
        for (const r of live) settle(r, () => { throw e; });
      } else {
        // One bad request (data that does not fit its shape, a sequence too long for the
        // model) must not fail the callers stacked with it: each runs alone, so every caller
        // gets its own result or its own error. Costs a second pass only when a batch fails.
        await Promise.all(live.filter((r) => !r.signal?.aborted).map((r) => this.#alone(r)));
      }
      return;
    }
    outs.forEach((out, i) => settle(live[i]!, () => unpad(out, this.#model, padded[i]!.sizes)));
  }

  /** Runs one request as its own batch (unpadded) and settles it. */
  async #alone(r: Request): Promise<void> {
    try {
      const [out] = await this.#model.runBatch([r.feeds]);
      settle(r, () => out!);
    } catch (e) {
      settle(r, () => { throw e; });
    }
  }

  /** Pads the opted-in inputs of each request to the batch's longest dims. */
  #padTo(batch: Request[]): Array<{ feeds: Feeds; sizes: Map<string, number> }> {
    const longest = new Map<string, number[]>();
    for (const name of Object.keys(this.#pad)) {
      for (const r of batch) {
        const shape = r.feeds[name]?.shape;
        if (!shape) continue;
        const cur = longest.get(name) ?? shape.map(() => 0);
        longest.set(name, cur.map((d, i) => Math.max(d, shape[i] ?? 0)));
      }
    }
    return batch.map((r) => {
      const feeds: Feeds = {};
      for (const [name, input] of Object.entries(r.feeds)) {
        const target = longest.get(name);
        if (!target || target.every((d, i) => i === 0 || d === input.shape[i])) {
          feeds[name] = input;
          continue;
        }
        const shape = [input.shape[0]!, ...target.slice(1)];
        feeds[name] = { data: padData(input, shape, this.#pad[name]!), shape, dtype: input.dtype };
      }
      return { feeds, sizes: symbolSizes(this.#model, r.feeds) };
    });
  }
}

/**
 * Cuts a batch into groups of requests of similar sizes, each its own engine call, so that
 * padding does not stretch short requests to the longest one's size. On a CPU, stacking
 * sequences saves little (16 MiniLM-shaped encoder requests of 128 tokens: 234 ms stacked,
 * 243 ms as plain concurrent runs), while padding costs in proportion: 16 requests of 16 to 128
 * tokens took 256 ms padded into one call, against 154-171 ms as plain concurrent runs and
 * 162-174 ms in onnxruntime.
 *
 * A request's size is its elements per row in the padded inputs. Over the requests sorted by
 * size, the groups minimize the padded elements computed plus, for each engine call, 1/16 of a
 * row of the batch's largest size (about what stacking saved per request above): requests
 * whose sizes differ by less than that share a call, and requests of one size always do.
 * Dynamic programming over the sorted sizes: O(n^2) for n requests.
 */
function bySize(batch: Request[], padded: string[]): Request[][] {
  if (padded.length === 0 || batch.length < 2) return [batch];
  const sized = batch.map((r) => {
    let size = 0;
    for (const name of padded) {
      const shape = r.feeds[name]?.shape;
      if (shape) size += shape.slice(1).reduce((a, b) => a * b, 1);
    }
    return { r, size };
  });
  sized.sort((a, b) => a.size - b.size);
  const n = sized.length;
  const largest = sized[n - 1]!.size;
  if (sized[0]!.size === largest) return [batch];
  const perCall = largest / 16;
  // cost[j]: the cheapest cut of the first j requests; from[j]: where its last group starts.
  const cost = new Array<number>(n + 1).fill(Infinity);
  const from = new Array<number>(n + 1).fill(0);
  cost[0] = 0;
  const upTo = [0];
  for (const s of sized) upTo.push(upTo[upTo.length - 1]! + s.r.rows);
  for (let j = 1; j <= n; j++) {
    // Larger groups first, so that a tie keeps fewer calls.
    for (let i = 0; i < j; i++) {
      const c = cost[i]! + (upTo[j]! - upTo[i]!) * sized[j - 1]!.size + perCall;
      if (c < cost[j]!) {
        cost[j] = c;
        from[j] = i;
      }
    }
  }
  const groups: Request[][] = [];
  for (let j = n; j > 0; j = from[j]!) groups.unshift(sized.slice(from[j]!, j).map((s) => s.r));
  return groups;
}

function positive(name: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`Batcher option ${name} must be a positive integer, got ${n}`);
  return n;
}

function nonNegativeMs(name: string, n: number): number {
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`Batcher option ${name} must be a non-negative number of milliseconds, got ${n}`);
  return n;
}

function fixedShape(model: TractModel, name: string): number[] {
  const info = model.inputs.find((i) => i.name === name);
  if (info && info.shape.every((d): d is number => typeof d === 'number')) return info.shape;
  throw new InputShapeError(`input '${name}': pass { data, shape } to the Batcher`);
}

function settle(r: Request, result: () => Outputs): void {
  if (r.onAbort) r.signal?.removeEventListener('abort', r.onAbort);
  if (r.signal?.aborted) return; // already rejected; an aborted request never gets a result
  try {
    r.resolve(result());
  } catch (e) {
    r.reject(e);
  }
}

/** Copies `input` into a tensor of `shape` (each dim >= the input's), filled with `value`. */
function padData(input: TensorInput, shape: number[], value: number | bigint): TensorData {
  const size = shape.reduce((a, b) => a * b, 1);
  const out = new (input.data.constructor as new (n: number) => TensorData)(size);
  out.fill(value as never);
  copyBlock(input.data, input.shape, out, shape);
  return out;
}

/** Copies a row-major block of `srcShape` into the top-left corner of `dstShape`. */
function copyBlock(src: TensorData, srcShape: readonly number[], dst: TensorData, dstShape: readonly number[]): void {
  const rank = srcShape.length;
  if (rank === 0) return;
  const inner = srcShape[rank - 1]!;
  const rowsCount = srcShape.slice(0, -1).reduce((a, b) => a * b, 1);
  const index = new Array<number>(rank - 1).fill(0);
  for (let row = 0; row < rowsCount; row++) {
    let s = 0;
    let d = 0;
    for (let k = 0; k < rank - 1; k++) {
      s = s * srcShape[k]! + index[k]!;
      d = d * dstShape[k]! + index[k]!;
    }
    (dst as Float32Array).set((src as Float32Array).subarray(s * inner, s * inner + inner), d * dstShape[rank - 1]!);
    for (let k = rank - 2; k >= 0; k--) {
      if (++index[k]! < srcShape[k]!) break;
      index[k] = 0;
    }
  }
}

/** The sizes the request's own (unpadded) inputs give the model's symbolic dims, e.g. S. */
function symbolSizes(model: TractModel, feeds: Record<string, TensorInput>): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const info of model.inputs) {
    const shape = feeds[info.name]?.shape;
    info.shape.forEach((d, i) => typeof d === 'string' && shape?.[i] !== undefined && sizes.set(d, shape[i]!));
  }
  return sizes;
}

/** Cuts each output's symbolic dims after the first back to the request's own sizes. */
function unpad(outputs: Outputs, model: TractModel, sizes: Map<string, number>): Outputs {
  const out: Outputs = {};
  for (const [name, t] of Object.entries(outputs)) {
    const declared = model.outputs.find((o) => o.name === name)?.shape ?? [];
    const shape = t.shape.map((d, i) => {
      const sym = declared[i];
      return i > 0 && typeof sym === 'string' && sizes.has(sym) ? sizes.get(sym)! : d;
    });
    if (shape.every((d, i) => d === t.shape[i])) {
      out[name] = t;
      continue;
    }
    const data = new ARRAY_FOR_DTYPE[t.dtype](shape.reduce((a, b) => a * b, 1));
    copyBack(t.data, t.shape, data, shape);
    out[name] = { data, shape, dtype: t.dtype };
  }
  return out;
}

/** Copies the top-left `dstShape` corner of a `srcShape` tensor. */
function copyBack(src: TensorData, srcShape: readonly number[], dst: TensorData, dstShape: readonly number[]): void {
  const rank = dstShape.length;
  const inner = dstShape[rank - 1]!;
  const rowsCount = dstShape.slice(0, -1).reduce((a, b) => a * b, 1);
  const index = new Array<number>(rank - 1).fill(0);
  for (let row = 0; row < rowsCount; row++) {
    let s = 0;
    for (let k = 0; k < rank - 1; k++) s = s * srcShape[k]! + index[k]!;
    (dst as Float32Array).set((src as Float32Array).subarray(s * srcShape[rank - 1]!, s * srcShape[rank - 1]! + inner), row * inner);
    for (let k = rank - 2; k >= 0; k--) {
      if (++index[k]! < dstShape[k]!) break;
      index[k] = 0;
    }
  }
}
