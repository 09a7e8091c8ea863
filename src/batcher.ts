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
import { Coalescer, type CoalesceOptions, type Queued, runOrEachAlone } from './coalesce';
import { InputNameError, InputShapeError } from './errors';
import {
  ARRAY_FOR_DTYPE,
  type Feeds,
  type Outputs,
  type TensorData,
  type TensorInput,
  isTypedArray,
} from './tensor';
import type { RunOptions, TractModel } from './tract-model';

export interface BatcherOptions extends CoalesceOptions {
  /** Inputs that may be padded along dims after the first, and their padding value. */
  pad?: Record<string, number | bigint>;
}

/** A request's named inputs, each with its shape. */
type Request = Queued<Record<string, TensorInput>, Outputs>;

export class Batcher extends Coalescer<Record<string, TensorInput>, Outputs> {
  #model: TractModel;
  #pad: Record<string, number | bigint>;

  constructor(model: TractModel, options: BatcherOptions = {}) {
    super('Batcher', options);
    this.#model = model;
    this.#pad = options.pad ?? {};
  }

  /** Queues one request; resolves with its own outputs once its batch has run. */
  run(feeds: Feeds, options: RunOptions = {}): Promise<Outputs> {
    return this.enqueue(() => this.#normalize(feeds), options.signal);
  }

  #normalize(feeds: Feeds): { input: Record<string, TensorInput>; rows: number } {
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
    return { input: out, rows: rows ?? 0 };
  }

  protected compatible(a: Request, b: Request): boolean {
    for (const [name, x] of Object.entries(a.input)) {
      const y = b.input[name];
      if (!y || y.data.constructor !== x.data.constructor || y.shape.length !== x.shape.length) return false;
      if (!(name in this.#pad) && x.shape.slice(1).some((d, i) => d !== y.shape[i + 1])) return false;
    }
    return Object.keys(a.input).length === Object.keys(b.input).length;
  }

  /**
   * Runs a batch as one engine call, or, when padding would stretch short requests to a long
   * one's size, as several calls of requests of similar sizes, side by side (see bySize).
   */
  protected async dispatch(live: Request[]): Promise<void> {
    // Side by side, as plain concurrent runs would be: one after the other, a group of short
    // requests left a core idle (16 requests of 16 to 128 tokens: 318 ms one by one).
    await Promise.all(bySize(live, Object.keys(this.#pad)).map((group) => this.#runGroup(group)));
  }

  /** One engine call for `live` (none aborted, at least one), padded to its longest. */
  async #runGroup(live: Request[]): Promise<void> {
    const padded = this.#padTo(live);
    await runOrEachAlone(
      live,
      async (signal) => {
        const outs = await this.#model.runBatch(padded.map((p) => p.feeds), { signal });
        return outs.map((out, i) => () => unpad(out, this.#model, padded[i]!.sizes));
      },
      // Alone, unpadded.
      async (r) => (await this.#model.runBatch([r.input], { signal: r.signal }))[0]!,
    );
  }

  /** Pads the opted-in inputs of each request to the batch's longest dims. */
  #padTo(batch: Request[]): Array<{ feeds: Feeds; sizes: Map<string, number> }> {
    const longest = new Map<string, number[]>();
    for (const name of Object.keys(this.#pad)) {
      for (const r of batch) {
        const shape = r.input[name]?.shape;
        if (!shape) continue;
        const cur = longest.get(name) ?? shape.map(() => 0);
        longest.set(name, cur.map((d, i) => Math.max(d, shape[i] ?? 0)));
      }
    }
    return batch.map((r) => {
      const feeds: Feeds = {};
      for (const [name, input] of Object.entries(r.input)) {
        const target = longest.get(name);
        if (!target || target.every((d, i) => i === 0 || d === input.shape[i])) {
          feeds[name] = input;
          continue;
        }
        const shape = [input.shape[0]!, ...target.slice(1)];
        feeds[name] = { data: padData(input, shape, this.#pad[name]!), shape, dtype: input.dtype };
      }
      return { feeds, sizes: symbolSizes(this.#model, r.input) };
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
      const shape = r.input[name]?.shape;
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

function fixedShape(model: TractModel, name: string): number[] {
  const info = model.inputs.find((i) => i.name === name);
  if (info && info.shape.every((d): d is number => typeof d === 'number')) return info.shape;
  throw new InputShapeError(`input '${name}': pass { data, shape } to the Batcher`);
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
