/**
 * CandleEmbedder: sentence embeddings with a BERT-family encoder (all-MiniLM, BGE, E5, ...)
 * through candle, as sentence-transformers computes them: tokenize (truncating to
 * `maxLength`), encode, mean-pool over real tokens (or take [CLS]), L2-normalize.
 *
 * ```ts
 * const emb = await CandleEmbedder.load('models/all-MiniLM-L6-v2');
 * const m = await emb.embed(['a cat sits', 'a dog runs']);
 * m.row(0); // Float32Array view of the first vector, no copy
 * ```
 */
import type { NativeCandleEmbedder, NativeEmbeddings } from '../index';
import { call, callAsync } from './call';
import { DeviceUnavailableError, DisposedError, InputDtypeError, InputShapeError, ModelLoadError } from './errors';
import { type NativeBinding, cudaNative, native } from './native';
import { inStream, pipelined } from './pipeline';
import { tokenFor } from './signal';

export type EmbedderDevice = 'cpu' | 'cuda' | `cuda:${number}` | 'metal' | 'auto';
export type EmbedderDType = 'float32' | 'float16' | 'bfloat16' | 'int8';
export type Pooling = 'mean' | 'cls';

export interface EmbedderLoadOptions {
  /** Where the encoder runs (default 'cpu'). 'auto' picks a GPU when this build has one. */
  device?: EmbedderDevice;
  /**
   * Compute precision of the encoder (default 'float32'); pooling is always float32. On the CPU,
   * 'bfloat16' and 'int8' keep float32 weights and run the linear layers' products in bfloat16
   * (AVX512-BF16; elsewhere candle's own, slower, bfloat16) or in int8 (AVX512-VNNI; elsewhere
   * float32, and `dtype` says so), as `TractModel`'s `precision` does. 'int8' is CPU-only.
   */
  dtype?: EmbedderDType;
  /**
   * Tokens per text, [CLS]/[SEP] included; longer texts are truncated, never an error.
   * Default: the folder's sentence_bert_config.json max_seq_length, else the model's limit.
   */
  maxLength?: number;
  /** Default: the folder's 1_Pooling/config.json, else 'mean'. */
  pooling?: Pooling;
  /** L2-normalize vectors (default true), so a dot product is the cosine similarity. */
  normalize?: boolean;
  /** CPU threads for this model (default: the CPUs this process may use). */
  threads?: number;
  /** Texts per engine call in `embed` (default 32). */
  batchSize?: number;
  /** Load through the model cache (default true). See `cache`. */
  cache?: boolean;
  signal?: AbortSignal;
}

export interface EmbedOptions {
  signal?: AbortSignal;
  /** Overrides the embedder's batchSize for this call. */
  batchSize?: number;
}

/** Token ids (and optionally the attention mask) of `rows` texts padded to `seq`. */
export interface TokenBatch {
  ids: Int32Array | BigInt64Array;
  /** 1 for tokens, 0 for padding; default all ones. */
  attentionMask?: Int32Array | BigInt64Array;
  shape: [rows: number, seq: number];
}

/** `rows` vectors of `dims` floats in one row-major Float32Array. */
export class Embeddings {
  constructor(
    readonly data: Float32Array,
    readonly rows: number,
    readonly dims: number,
  ) {}

  /** Row `i` as a view of `data` (no copy). */
  row(i: number): Float32Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.rows) {
      throw new RangeError(`row ${String(i)} is out of range (0..${this.rows - 1})`);
    }
    return this.data.subarray(i * this.dims, (i + 1) * this.dims);
  }

  *[Symbol.iterator](): IterableIterator<Float32Array> {
    for (let i = 0; i < this.rows; i++) yield this.row(i);
  }
}

/** Cosine similarity of two vectors (for normalized vectors, their dot product). */
export function cosineSimilarity(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`vectors differ in length: ${a.length} vs ${b.length}`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

function positiveInt(what: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
    throw new ModelLoadError(`${what} must be a positive integer, got ${String(v)}`);
  }
}

function batchSizeOf(v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1) throw new InputShapeError(`batchSize must be a positive integer, got ${String(v)}`);
  return v;
}

const toEmbeddings = (n: NativeEmbeddings) => new Embeddings(n.data, n.rows, n.dims);

/**
 * The addon to load an embedder with: this build, or the CUDA build when a CUDA device is asked
 * for and this build has no CUDA backend. 'cuda' fails with the reason when the CUDA build does
 * not load; 'auto' then stays on this build (and so on the CPU).
 */
function bindingFor(device: EmbedderDevice): NativeBinding {
  const own = native();
  const wantsCuda = device === 'auto' || device === 'cuda' || device.startsWith('cuda:');
  if (!wantsCuda || own.compiledBackends().includes('cuda')) return own;
  const cuda = cudaNative();
  if ('binding' in cuda) return cuda.binding;
  if (device === 'auto') return own;
  throw new DeviceUnavailableError(`device '${device}' is unavailable: ${cuda.reason}`);
}

export class CandleEmbedder {
  /** Vector size. */
  readonly dims: number;
  /** Tokens per text after truncation. */
  readonly maxLength: number;
  /** The device in use ('auto' resolved to what answered). */
  readonly device: 'cpu' | 'cuda' | `cuda:${number}` | 'metal';
  readonly dtype: EmbedderDType;
  readonly pooling: Pooling;
  readonly normalize: boolean;
  readonly threads: number;
  readonly batchSize: number;
  #native: NativeCandleEmbedder;
  #binding: NativeBinding; // the addon that made #native (the CPU or the CUDA build)
  #disposed = false;

  private constructor(n: NativeCandleEmbedder, binding: NativeBinding, batchSize: number) {
    this.#native = n;
    this.#binding = binding;
    this.dims = n.dims;
    this.maxLength = n.maxLength;
    this.device = n.device as CandleEmbedder['device'];
    this.dtype = n.dtype as EmbedderDType;
    this.pooling = n.pooling as Pooling;
    this.normalize = n.normalize;
    this.threads = n.threads;
    this.batchSize = batchSize;
  }

  /** Loads a model folder (config.json, tokenizer.json, model.safetensors) off the JS thread. */
  static async load(dir: string, options: EmbedderLoadOptions = {}): Promise<CandleEmbedder> {
    if (typeof dir !== 'string') throw new ModelLoadError('CandleEmbedder.load takes the model folder path (a string)');
    positiveInt('load option maxLength', options.maxLength);
    positiveInt('load option threads', options.threads);
    positiveInt('load option batchSize', options.batchSize);
    let binding = native();
    const n = await callAsync(
      () =>
        (binding = bindingFor(options.device ?? 'cpu')).loadCandleEmbedder(
          dir,
          {
            device: options.device,
            dtype: options.dtype,
            maxLength: options.maxLength,
            pooling: options.pooling,
            normalize: options.normalize,
            threads: options.threads,
            cache: options.cache,
          },
          tokenFor(options.signal, binding.NativeCancelToken),
        ),
      options.signal,
    );
    return new CandleEmbedder(n, binding, options.batchSize ?? 32);
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Embeds texts off the JS thread, `batchSize` texts per engine call (similar lengths are
   * batched together). Resolves with one matrix, row i for texts[i]. An empty list gives an
   * empty matrix. Aborting rejects with ERR_ABORTED and stops the work before its next
   * encoder layer.
   */
  embed(texts: readonly string[], options: EmbedOptions = {}): Promise<Embeddings> {
    return this.#start(options, (token, batch) => {
      if (!Array.isArray(texts)) throw new InputDtypeError('embed takes an array of strings');
      texts.forEach((t, i) => {
        if (typeof t !== 'string') throw new InputDtypeError(`texts[${i}] is ${t === null ? 'null' : typeof t}, expected a string`);
      });
      return this.#native.embed(texts as string[], batch, token);
    });
  }

  /**
   * Embeds every text of `source` (an array, a generator, lines of a file, a database cursor)
   * and yields one vector per text, in order. Texts are taken `batchSize` at a time (default
   * the embedder's), each batch one `embed` call; the next batch is gathered and started while
   * the current one runs (at most two in flight), so memory stays bounded by two batches.
   * Each vector is a view of its batch's result buffer.
   */
  stream(
    source: AsyncIterable<string> | Iterable<string>,
    options: EmbedOptions = {},
  ): AsyncGenerator<Float32Array, void, undefined> {
    const batchSize = options.batchSize ?? this.batchSize;
    return pipelined(source, batchSize, async (texts, first) => {
      try {
        return [...(await this.embed(texts, { signal: options.signal, batchSize }))];
      } catch (e) {
        throw inStream(e, first, texts.length, /^texts\[(\d+)\]/);
      }
    });
  }

  /** Embeds pre-tokenized input (ids from your own tokenizer), `shape` = [rows, seq]. */
  embedTokens(tokens: TokenBatch, options: EmbedOptions = {}): Promise<Embeddings> {
    return this.#start(options, (token, batch) => {
      const { ids, attentionMask, shape } = tokens ?? ({} as TokenBatch);
      const intArray = (v: unknown) => v instanceof Int32Array || v instanceof BigInt64Array;
      if (!intArray(ids)) throw new InputDtypeError('embedTokens: ids must be an Int32Array or a BigInt64Array');
      if (attentionMask !== undefined && !intArray(attentionMask)) {
        throw new InputDtypeError('embedTokens: attentionMask must be an Int32Array or a BigInt64Array');
      }
      const ok = Array.isArray(shape) && shape.length === 2 && shape.every((d) => Number.isInteger(d) && d >= 0 && d < 2 ** 32);
      if (!ok) throw new InputShapeError(`embedTokens: shape must be [rows, seq] of non-negative integers, got ${JSON.stringify(shape)}`);
      return this.#native.embedTokens(ids, attentionMask, shape[0], shape[1], batch, token);
    });
  }

  #start(options: EmbedOptions, f: (token: InstanceType<NativeBinding['NativeCancelToken']> | undefined, batch: number) => Promise<NativeEmbeddings>): Promise<Embeddings> {
    const { signal } = options;
    return callAsync(() => {
      if (this.#disposed) throw new DisposedError('the embedder was disposed; load it again to use it');
      const batch = batchSizeOf(options.batchSize, this.batchSize);
      return f(tokenFor(signal, this.#binding.NativeCancelToken), batch).then(toEmbeddings);
    }, signal);
  }

  /** Releases this handle; the model is freed when no other handle (cache) or call holds it. */
  async dispose(): Promise<void> {
    this.#disposed = true;
    call(() => this.#native.dispose());
  }
}
