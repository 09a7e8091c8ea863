/**
 * TractModel: an ONNX model on CPU through tract. Loaded and optimized once; every run, from
 * any number of concurrent callers, shares the one plan. Runs happen on the libuv pool.
 *
 * Zero-copy contract: input typed arrays are read in place by the engine, so do not mutate an
 * input until the Promise of its run settles. Output arrays own the engine's buffer (an
 * external ArrayBuffer, freed when garbage-collected); outputs of one runBatch call are views
 * of one shared buffer.
 */
import type { NativeTractModel, NativeTractSession } from '../index';
import { call, callAsync } from './call';
import { DisposedError, InputNameError, ModelLoadError } from './errors';
import { inStream, pipelined } from './pipeline';
import { DEFAULT_INLINE_UNDER_US, InlinePolicy, shapeKey, turn } from './inline';
import { packFeeds, unpackOutputs } from './packed';
import { throwIfAborted, tokenFor } from './signal';
import { native } from './native';
import {
  type DType,
  type Dim,
  type Feeds,
  type NativeFeedArg,
  type Outputs,
  type TensorData,
  type TensorInfo,
  isTypedArray,
  toNativeFeed,
  toNativeFeeds,
  toOutputs,
} from './tensor';

export interface InputFact {
  dtype?: DType;
  /** Sizes, or symbols such as `'N'` for sizes known only at run time. */
  shape?: Dim[];
}

export interface TractLoadOptions {
  /** Facts that override or complete what the file declares, by input name. */
  inputs?: Record<string, InputFact>;
  /** Intra-op threads for this model; default: the CPUs this process may use. */
  threads?: number;
  /**
   * Debug aid for the zero-copy contract: copy every input on the JS thread before a run, so
   * the engine never reads the caller's memory. If results change when this is on, the caller
   * is writing to inputs while their runs are in flight.
   */
  copyInputs?: boolean;
  /**
   * Inputs fixed to a value at load time, as `{ data, shape }`. They stop being inputs, and
   * what depends on them is folded (a sample-rate input that selects a branch, say).
   */
  constants?: Feeds;
  /**
   * Load through the model cache (default true): the same file (path, size, mtime) or bytes
   * with the same options give the same native model, loaded once. See `cache`.
   */
  cache?: boolean;
  /**
   * `run()` and `session().run()` of input shapes that measured under this many µs per call
   * execute on the calling thread, since a hop to the thread pool and back (40-150 µs on a
   * shared VM) would add a good part of that. Shapes not yet measured, or measured above it,
   * always run on the pool; inline runs give the event loop a turn after each millisecond.
   * Default 500; 0 keeps every run on the pool. See README, "Small models".
   */
  inlineUnderUs?: number;
  /**
   * Precision of the products by constant weights (the linear layers of a transformer, ONNX
   * `MatMul` by an initializer): `'float32'` (default), or `'bfloat16'`: weights rounded to
   * bfloat16 once at load, activations rounded per call, sums kept in float32, on AVX512-BF16
   * (AMD Zen 4 and later, Intel Sapphire Rapids and later), where such products run up to twice as
   * fast. Outputs then differ from float32 ones by bfloat16's rounding (README, "Reduced precision").
   * Or `'int8'`: weights quantized to 8-bit integers once at load (per output column), activations
   * per call (per row, with a zero point), products summed exactly in 32-bit integers, on
   * AVX512-VNNI (Intel Ice Lake and later, AMD Zen 4 and later): up to twice bfloat16's speed,
   * at 8-bit resolution (README, "Reduced precision").
   * On a CPU without the instructions the model runs in float32: `model.precision` says which.
   */
  precision?: Precision;
  /**
   * The external data files of a model given as bytes, as onnxruntime's `externalData`: each
   * `{ path, data }`, where `path` is the location the model names (`'model.onnx_data'`) and
   * `data` the file's bytes or a path to read it from; a plain string is a path that is both.
   * A model loaded by its path finds these files beside it without this option.
   */
  externalData?: ExternalDataFile[];
  signal?: AbortSignal;
}

/** An external data file: where the model says it is, and its bytes or a path to read them. */
export type ExternalDataFile = string | { path: string; data: Uint8Array | ArrayBuffer | string };

function toNativeExternalData(files: ExternalDataFile[] | undefined): Array<{ path: string; data: string | Uint8Array }> | undefined {
  if (files === undefined) return undefined;
  if (!Array.isArray(files)) throw new ModelLoadError('load option externalData must be an array of { path, data }');
  return files.map((f, i) => {
    if (typeof f === 'string') return { path: f, data: f };
    const data = f?.data instanceof ArrayBuffer ? new Uint8Array(f.data) : f?.data;
    if (typeof f?.path !== 'string' || !(typeof data === 'string' || data instanceof Uint8Array)) {
      throw new ModelLoadError(`load option externalData[${i}] must be a path or { path: string, data: Uint8Array | ArrayBuffer | string }`);
    }
    return { path: f.path, data };
  });
}

/** Precision of a model's products by constant weights (see `TractLoadOptions.precision`). */
export type Precision = 'float32' | 'bfloat16' | 'int8';

/** Whether `value` names a `Precision`. */
export function isPrecision(value: unknown): value is Precision {
  return value === 'float32' || value === 'bfloat16' || value === 'int8';
}

export interface RunOptions {
  signal?: AbortSignal;
}

export interface OpCount {
  op: string;
  count: number;
}

export interface SessionOptions {
  /**
   * Outputs fed back as inputs of the next run, as `{ output: input }`. Default: found by
   * name (`stateN`→`state`, `hn`→`h`, `x_out`→`x`, `present…`→`past…`).
   */
  carry?: Record<string, string>;
  /** Inputs fed on every run unless the run gives them (e.g. a sample rate). */
  constants?: Feeds;
}

function toInfo(i: { name: string; dtype: string; shape: Array<number | string> }): TensorInfo {
  return { name: i.name, dtype: i.dtype as DType, shape: i.shape };
}

export class TractModel {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  /** SHA-256 of the model bytes, for reproducibility. */
  readonly sha256: string;
  /** Intra-op threads this model runs with. */
  readonly threads: number;
  /**
   * What its products by constant weights run in on this CPU: the load option `precision`
   * where the CPU has it, else `'float32'`.
   */
  readonly precision: Precision;
  #native: NativeTractModel;
  #copyInputs: boolean;
  #inline: InlinePolicy | undefined;
  /** Inline runs waiting for the event loop's next turn (dispose lets them finish first). */
  #waiting = 0;
  /** Runs of this model on the pool, in flight (with inline runs: see dispatch). */
  #pooled = 0;
  #disposed = false; // mirrors the native flag, read on every call without crossing into Rust

  /**
   * How runs are planned: `'symbolic'`, one plan for every input shape, or `'per-shape'`,
   * where tract's analysis could not follow the model's dynamic axes (at load, or when its
   * plan failed on a shape that a plan for that shape ran) and each new input shape is planned
   * at its first run, the 16 most recent plans kept (README, "Models from exporters and hubs").
   */
  get planning(): 'symbolic' | 'per-shape' {
    return this.#native.planning;
  }

  private constructor(n: NativeTractModel, copyInputs: boolean, inlineUnderUs: number) {
    this.#native = n;
    this.#copyInputs = copyInputs;
    this.#inline = inlineUnderUs > 0 ? new InlinePolicy(inlineUnderUs) : undefined;
    this.inputs = Object.freeze(n.inputs.map(toInfo));
    this.outputs = Object.freeze(n.outputs.map(toInfo));
    this.sha256 = n.sha256;
    this.threads = n.threads;
    this.precision = n.precision;
  }

  /** Loads an ONNX model from a file path or its bytes (read in place while loading). */
  static async load(source: string | Uint8Array, options: TractLoadOptions = {}): Promise<TractModel> {
    const { signal } = options;
    const inputs = Object.entries(options.inputs ?? {}).map(([name, f]) => ({
      name,
      dtype: f.dtype,
      shape: f.shape,
    }));
    if (options.threads !== undefined && (!Number.isInteger(options.threads) || options.threads < 1)) {
      throw new ModelLoadError(`load option threads must be a positive integer, got ${String(options.threads)}`);
    }
    if (options.precision !== undefined && !isPrecision(options.precision)) {
      throw new ModelLoadError(`load option precision must be 'float32', 'bfloat16' or 'int8', got ${JSON.stringify(options.precision)}`);
    }
    const inlineUnderUs = options.inlineUnderUs ?? DEFAULT_INLINE_UNDER_US;
    if (typeof inlineUnderUs !== 'number' || !(inlineUnderUs >= 0) || !Number.isFinite(inlineUnderUs)) {
      throw new ModelLoadError(`load option inlineUnderUs must be a number >= 0 (µs), got ${String(options.inlineUnderUs)}`);
    }
    if (typeof source !== 'string' && !(source instanceof Uint8Array)) {
      throw new ModelLoadError('model source must be a file path (string) or the model bytes (Uint8Array)');
    }
    const n = await callAsync(() => {
      const constants = Object.entries(options.constants ?? {}).map(([name, value]) => toNativeFeed(name, value, undefined));
      const externalData = toNativeExternalData(options.externalData);
      return native().loadTractModel(
        source,
        { inputs, threads: options.threads, constants, cache: options.cache, precision: options.precision, externalData },
        tokenFor(signal, native().NativeCancelToken),
      );
    }, signal);
    return new TractModel(n, options.copyInputs === true, inlineUnderUs);
  }

  /** Op types of the model as written in the file, most frequent first. */
  get ops(): OpCount[] {
    return this.#native.ops;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Runs the model on the libuv pool (or, for input shapes measured under `inlineUnderUs`, on
   * the calling thread). Rejects with ERR_ABORTED if `signal` aborts first.
   */
  run(feeds: Feeds | TensorData, options: RunOptions = {}): Promise<Outputs> {
    const { signal } = options;
    return callAsync(() => this.dispatch(this.#native, this.#feeds(feeds), signal), signal);
  }

  /**
   * @internal Runs resolved feeds on `target` (the model or one of its sessions): inline where
   * the policy has measured the shape as cheaper than a pool hop, else on the pool, recording
   * what each run cost.
   */
  dispatch(
    target: NativeTractModel | NativeTractSession,
    args: NativeFeedArg[],
    signal: AbortSignal | undefined,
  ): Promise<Outputs> {
    const policy = this.#inline;
    if (policy === undefined) return this.runPooled(target, args, signal);
    const key = shapeKey(args);
    const t0 = performance.now();
    if (policy.place(key) === 'inline') {
      if (turn.spent) {
        // Concurrent callers (runs of this model on the pool or already waiting) are better
        // served by the pool's threads than by waiting their turn on this one.
        if (this.#pooled > 0 || this.#waiting > 0) return this.#counted(this.runPooled(target, args, signal));
        return this.#nextTurn(target, args, signal);
      }
      const out = this.runNow(target, args); // throws: callAsync turns it into a rejection
      const us = (performance.now() - t0) * 1000;
      policy.inlineRan(key, us);
      turn.spend(us);
      return Promise.resolve(out);
    }
    return this.#counted(this.runPooled(target, args, signal)).then((out) => {
      policy.pooledRan(key, (performance.now() - t0) * 1000);
      return out;
    });
  }

  /** Counts `run` among this model's pool runs in flight until it settles. */
  #counted(run: Promise<Outputs>): Promise<Outputs> {
    this.#pooled++;
    const done = () => { this.#pooled--; };
    run.then(done, done);
    return run;
  }

  /** Dispatches a run again once the event loop has turned (this turn's inline budget is spent). */
  #nextTurn(
    target: NativeTractModel | NativeTractSession,
    args: NativeFeedArg[],
    signal: AbortSignal | undefined,
  ): Promise<Outputs> {
    this.#waiting++;
    return turn.next().then(() => {
      this.#waiting--;
      throwIfAborted(signal); // aborted while waiting: no work
      return this.dispatch(target, args, signal);
    });
  }

  /**
   * Runs the model on the calling thread, blocking it. Meant for microsecond-scale models where
   * a thread hop costs more than the work; prefer `run` for anything larger.
   */
  runSync(feeds: Feeds | TensorData): Outputs {
    return call(() => this.runNow(this.#native, this.#feeds(feeds)));
  }

  /** @internal Runs resolved feeds on `target` (the model or one of its sessions), blocking. */
  runNow(target: NativeTractModel | NativeTractSession, args: NativeFeedArg[]): Outputs {
    const [data, meta] = packFeeds(args, this.inputs);
    return unpackOutputs(target.runSync(data, meta), this.outputs);
  }

  /** @internal Runs resolved feeds on `target` on the libuv pool. */
  runPooled(target: NativeTractModel | NativeTractSession, args: NativeFeedArg[], signal: AbortSignal | undefined): Promise<Outputs> {
    const [data, meta] = packFeeds(args, this.inputs);
    // No token (and no binding lookup) for the common run without a signal.
    const token = signal && tokenFor(signal, native().NativeCancelToken);
    return target.run(data, meta, token).then((raw) => unpackOutputs(raw, this.outputs));
  }

  /**
   * Runs many requests as one engine call: each input is stacked along dim 0, and the outputs
   * are split back per request (views of one buffer, no copy). Every request needs the same
   * dims after the first; the model's outputs must carry the batch as dim 0.
   */
  runBatch(requests: ReadonlyArray<Feeds>, options: RunOptions = {}): Promise<Outputs[]> {
    return callAsync(async () => {
      if (!Array.isArray(requests)) {
        throw new InputNameError('runBatch takes an array of feeds objects');
      }
      const args = requests.map((r, i) => this.#feeds(r, `request ${i}`));
      const outs = await this.#native.runBatch(args, tokenFor(options.signal, native().NativeCancelToken));
      return outs.map(toOutputs);
    }, options.signal);
  }

  /**
   * Runs every item of `source` and yields its outputs in order. Items are grouped into
   * `runBatch` calls of `batchSize`; the next batch is gathered and started while the current
   * one runs (at most two in flight).
   */
  stream(
    source: AsyncIterable<Feeds> | Iterable<Feeds>,
    options: RunOptions & { batchSize?: number } = {},
  ): AsyncGenerator<Outputs, void, undefined> {
    return pipelined(source, options.batchSize ?? 1, (items, first) =>
      this.runBatch(items, { signal: options.signal }).catch((e: unknown) => {
        throw inStream(e, first, items.length, /^request (\d+): /);
      }),
    );
  }

  /** A stateful stream over this model: recurrent outputs are fed back as inputs. */
  session(options: SessionOptions = {}): TractSession {
    return call(() => {
      const carry = options.carry ? Object.entries(options.carry) : undefined;
      const constants = options.constants ? toNativeFeeds(options.constants, this.inputs, 'constants') : [];
      const fixed = new Set(constants.map((c) => c.name));
      return new TractSession(this.#native.session({ carry, constants }), this, fixed);
    });
  }

  /** Frees the model once runs in flight finish. Later calls fail with ERR_DISPOSED. */
  async dispose(): Promise<void> {
    this.#disposed = true;
    // Runs accepted before now finish, including inline ones waiting for the loop's next turn.
    while (this.#waiting > 0) await turn.next();
    this.#native.dispose();
  }

  #feeds(feeds: unknown, what?: string): NativeFeedArg[] {
    if (this.#disposed) throw new DisposedError('the model was disposed; load it again to use it');
    return this.prepare(toNativeFeeds(feeds, this.inputs, what));
  }

  /** @internal Applies `copyInputs` to resolved feeds. */
  prepare(feeds: NativeFeedArg[]): NativeFeedArg[] {
    if (!this.#copyInputs) return feeds;
    return feeds.map((f) => ({ ...f, data: (f.data as TensorData).slice() }));
  }
}

/**
 * A stream of runs that carries state between them. Runs of one session execute one after
 * another in call order, whatever the pool does.
 */
export class TractSession {
  #native: NativeTractSession;
  #model: TractModel;
  #free: TensorInfo[];
  #queue: Promise<unknown> = Promise.resolve();
  #pending = 0; // steps queued or running; an inline step must not overtake one

  /** @internal */
  constructor(n: NativeTractSession, model: TractModel, constants: ReadonlySet<string>) {
    this.#native = n;
    this.#model = model;
    const carried = new Set(n.carried.map(([, input]) => input));
    this.#free = model.inputs.filter((i) => !carried.has(i.name) && !constants.has(i.name));
  }

  /** `{ output: input }` pairs carried from one run to the next. */
  get carried(): Record<string, string> {
    return Object.fromEntries(this.#native.carried.map(([o, i]) => [o!, i!]));
  }

  /**
   * Runs one step. Feeds may omit carried inputs and constants. A bare typed array feeds the one
   * input that is neither carried nor constant.
   */
  run(feeds: Feeds | TensorData, options: RunOptions = {}): Promise<Outputs> {
    const { signal } = options;
    const model = this.#model;
    const start = () => callAsync(() => model.dispatch(this.#native, this.#feeds(feeds), signal), signal);
    // With nothing ahead of it, a step starts now (so a cheap one can run inline at once);
    // otherwise once the steps before it have settled.
    return this.#track(this.#pending === 0 ? start() : this.#queue.then(start));
  }

  #track(step: Promise<Outputs>): Promise<Outputs> {
    this.#pending++;
    const settled = step.then(
      () => { this.#pending--; },
      () => { this.#pending--; },
    );
    this.#queue = settled;
    return step;
  }

  /** One step on the calling thread (blocking). */
  runSync(feeds: Feeds | TensorData): Outputs {
    return call(() => this.#model.runNow(this.#native, this.#feeds(feeds)));
  }

  /** Forgets the carried state; the next run starts from zeros. */
  reset(): void {
    this.#native.reset();
  }

  #feeds(feeds: unknown): NativeFeedArg[] {
    if (this.#model.disposed) throw new DisposedError('the model of this session was disposed');
    if (isTypedArray(feeds)) {
      const free = this.#free;
      if (free.length !== 1) {
        return toNativeFeeds(feeds, free); // throws, naming the inputs left to feed
      }
      return this.#model.prepare(toNativeFeeds({ [free[0]!.name]: feeds }, this.#model.inputs));
    }
    return this.#model.prepare(toNativeFeeds(feeds, this.#model.inputs));
  }
}

