/**
 * A TypeScript consumer of the published API, compiled (never run) by test/types.test.ts. It
 * uses every public export, so a change to the exported types that breaks users fails that
 * test; the `@ts-expect-error` lines prove that wrong usage is rejected (tsc fails if any of
 * them stops being an error).
 */
import {
  AbortedError,
  Batcher,
  QueueFullError,
  type BatcherOptions,
  DeviceUnavailableError,
  DisposedError,
  ERROR_CODES,
  EngineError,
  InputDtypeError,
  InputValueError,
  InputNameError,
  InputShapeError,
  ModelLoadError,
  OxinferError,
  TractModel,
  TractSession,
  nativeAddonPath,
  platformTriple,
  type DType,
  type Dim,
  type ErrorCode,
  type Feeds,
  type InputFact,
  type OpCount,
  type Outputs,
  type RunOptions,
  type SessionOptions,
  type Tensor,
  type TensorData,
  type TensorInfo,
  type TensorInput,
  type TractLoadOptions,
  CandleEmbedder,
  EmbedBatcher,
  type EmbedBatcherOptions,
  Embeddings,
  cosineSimilarity,
  cache,
  type CacheStats,
  type CacheEntry,
  type EmbedderLoadOptions,
  type EmbedOptions,
  type TokenBatch,
  type EmbedderDevice,
  type EmbedderDType,
  type Pooling,
} from 'oxinfer';
import { readFileSync } from 'node:fs';

const dtype: DType = 'float32';
const dims: Dim[] = ['N', 3, 224, 224];
const fact: InputFact = { dtype, shape: dims };

export async function main(): Promise<void> {
  const ac = new AbortController();
  const options: TractLoadOptions = {
    inputs: { image: fact, mask: { shape: [1, 'T'] }, other: { dtype: 'int64' } },
    threads: 2,
    constants: { sr: { data: new BigInt64Array([16000n]), shape: [] } },
    signal: ac.signal,
  };
  const model: TractModel = await TractModel.load('model.onnx', options);
  const fromBytes = await TractModel.load(new Uint8Array(readFileSync('model.onnx')));
  await TractModel.load(readFileSync('model.onnx')); // a Buffer is a Uint8Array

  // Metadata.
  const inputs: readonly TensorInfo[] = model.inputs;
  const outputs: readonly TensorInfo[] = model.outputs;
  const first: TensorInfo | undefined = inputs[0];
  const name: string | undefined = first?.name;
  const shape: Dim[] | undefined = outputs[0]?.shape;
  const sha: string = model.sha256;
  const threads: number = model.threads;
  const ops: OpCount[] = model.ops;
  const opSummary = ops.map((o: OpCount) => `${o.op}×${o.count}`).join(', ');
  const disposed: boolean = model.disposed;
  console.log(name, shape, sha, threads, opSummary, disposed, fromBytes.sha256);

  // Feeds: { data, shape }, { data, shape, dtype }, a bare typed array, every typed array kind.
  const image: TensorInput = { data: new Float32Array(3 * 224 * 224), shape: [1, 3, 224, 224] };
  const half: TensorInput = { data: new Uint16Array(4), shape: [4], dtype: 'float16' };
  const flags: TensorInput = { data: new Uint8Array(4), shape: [2, 2] as const, dtype: 'bool' };
  const kinds: TensorData[] = [
    new Float32Array(1), new Float64Array(1), new BigInt64Array(1), new BigUint64Array(1),
    new Int32Array(1), new Uint32Array(1), new Int16Array(1), new Uint16Array(1),
    new Int8Array(1), new Uint8Array(1), new Uint8ClampedArray(1),
  ];
  const feeds: Feeds = { image, half, flags, ids: new BigInt64Array([1n, 2n]) };
  const runOptions: RunOptions = { signal: ac.signal };

  const out: Outputs = await model.run(feeds, runOptions);
  await model.run(new Float32Array(10)); // one-input model: a bare typed array
  const probs: Tensor | undefined = out.probs;
  if (probs) {
    const data: TensorData = probs.data;
    const outShape: number[] = probs.shape;
    const outType: DType = probs.dtype;
    if (data instanceof Float32Array) console.log(data[0], outShape, outType);
  }
  const sync: Outputs = model.runSync({ a: new Float32Array([1]), b: new Float32Array([2]) });
  const batch: Outputs[] = await model.runBatch([{ image }, { image }], { signal: ac.signal });
  await model.runBatch([feeds]);
  console.log(sync.c?.data, batch.length, kinds.length);

  // Sessions.
  const sessionOptions: SessionOptions = {
    carry: { stateN: 'state' },
    constants: { sr: { data: new BigInt64Array([16000n]), shape: [] } },
  };
  const session: TractSession = model.session(sessionOptions);
  model.session();
  const step: Outputs = await session.run(new Float32Array(576), runOptions);
  await session.run({ input: { data: new Float32Array(576), shape: [1, 576] } });
  const syncStep: Outputs = session.runSync(new Float32Array(576));
  session.reset();
  const carried: Record<string, string> = session.carried;
  console.log(step.output?.data, syncStep, carried);

  // Batcher and stream.
  const batcherOptions: BatcherOptions = { maxBatch: 16, maxDelayMs: 2, maxQueue: 100, pad: { input_ids: 0n } };
  const batcher = new Batcher(model, batcherOptions);
  const batched: Outputs = await batcher.run(feeds, runOptions);
  const pending: number = batcher.pending;
  await batcher.close();
  for await (const o of model.stream([feeds, feeds], { batchSize: 2, signal: new AbortController().signal })) {
    const streamed: Outputs = o;
    console.log(streamed);
  }
  console.log(batched, pending, batcher.maxBatch);

  await model.dispose();

  // Errors: every class, its code, ERROR_CODES.
  try {
    await model.run(feeds);
  } catch (e) {
    if (e instanceof OxinferError) {
      const code: ErrorCode = e.code;
      const message: string = e.message;
      console.log(code, message, e.name, e.cause);
    }
    if (e instanceof ModelLoadError) console.log(e.code);
    if (e instanceof InputNameError) console.log(e.code);
    if (e instanceof InputShapeError) console.log(e.code);
    if (e instanceof InputDtypeError) console.log(e.code);
    if (e instanceof DeviceUnavailableError) console.log(e.code);
    if (e instanceof AbortedError) console.log(e.code);
    if (e instanceof DisposedError) console.log(e.code);
    if (e instanceof EngineError) console.log(e.code);
    if (e instanceof QueueFullError) console.log(e.code);
  }
  const codes: ErrorCode[] = ERROR_CODES;
  const custom: OxinferError = new OxinferError('ERR_ENGINE', 'x', { cause: new Error('y') });
  const errors: OxinferError[] = [
    new ModelLoadError('m'), new InputNameError('m'), new InputShapeError('m'), new InputDtypeError('m'), new InputValueError('m'),
    new DeviceUnavailableError('m'), new AbortedError(), new DisposedError('m'), new EngineError('m', { cause: 1 }), new QueueFullError('m'),
  ];
  console.log(codes, custom, errors, platformTriple(), nativeAddonPath());

  // Wrong usage the types reject.
  // @ts-expect-error: a shape dim in a feed must be a number (symbols are for load-time facts)
  await model.run({ image: { data: new Float32Array(4), shape: [1, 'N'] } });
  // @ts-expect-error: not a dtype name
  const badType: DType = 'float8';
  // @ts-expect-error: not a dtype name, in a feed
  await model.run({ x: { data: new Float32Array(1), shape: [1], dtype: 'f32' } });
  // @ts-expect-error: data must be a typed array, not a plain Array
  await model.run({ x: { data: [1, 2], shape: [2] } });
  // @ts-expect-error: the source is a path or the bytes
  await TractModel.load(42);
  // @ts-expect-error: threads is a number
  await TractModel.load('m.onnx', { threads: '2' });
  // @ts-expect-error: not an error code
  const badCode: ErrorCode = 'ERR_NOPE';
  // @ts-expect-error: model metadata is read-only
  model.inputs.push({ name: 'x', dtype: 'float32', shape: [1] });
  // @ts-expect-error: models are made by TractModel.load, not new
  new TractModel();
  // @ts-expect-error: carry maps output names to input names
  model.session({ carry: { stateN: 1 } });
  // @ts-expect-error: runSync returns Outputs, not a Promise
  await model.runSync(feeds).then(() => undefined);
  // @ts-expect-error: maxBatch is a number
  new Batcher(model, { maxBatch: '8' });
  // @ts-expect-error: runBatch takes an array of feeds objects
  await model.runBatch(feeds);
  console.log(badType, badCode);
}

export async function embeddings(): Promise<void> {
  const device: EmbedderDevice = 'auto';
  const dtype: EmbedderDType = 'float16';
  const pooling: Pooling = 'cls';
  const options: EmbedderLoadOptions = { device, dtype, pooling, maxLength: 128, normalize: true, threads: 2, batchSize: 16, cache: false };
  const emb: CandleEmbedder = await CandleEmbedder.load('models/all-MiniLM-L6-v2', options);
  const eo: EmbedOptions = { signal: AbortSignal.timeout(1000), batchSize: 8 };
  const m: Embeddings = await emb.embed(['a', 'b'], eo);
  const row: Float32Array = m.row(0);
  for (const v of m) console.log(cosineSimilarity(row, v));
  const tokens: TokenBatch = { ids: new Int32Array([101, 102]), attentionMask: new Int32Array([1, 1]), shape: [1, 2] };
  const fromTokens: Embeddings = await emb.embedTokens(tokens);
  const used: 'cpu' | 'cuda' | `cuda:${number}` | 'metal' = emb.device;
  const stats: CacheStats = cache.stats();
  const entries: CacheEntry[] = stats.entries;
  cache.setBudget(1 << 30);
  cache.setBudget(null);
  cache.clear();
  console.log(m.data, m.rows, m.dims, fromTokens, used, entries, emb.dims, emb.maxLength);
  for await (const v of emb.stream(['a', 'b'], { batchSize: 2, signal: AbortSignal.timeout(1000) })) {
    const vector: Float32Array = v;
    console.log(vector);
  }
  const ebOptions: EmbedBatcherOptions = { maxBatch: 64, maxDelayMs: 2, maxQueue: 100 };
  const eb = new EmbedBatcher(emb, ebOptions);
  const joined: Embeddings = await eb.embed(['a'], { signal: AbortSignal.timeout(1000) });
  const waiting: number = eb.pending;
  await eb.close();
  console.log(joined, waiting, eb.maxBatch);
  // @ts-expect-error: EmbedBatcher.embed takes an array of strings
  await eb.embed('a');
  await emb.dispose();
  // @ts-expect-error: texts are strings
  await emb.embed([1, 2]);
  // @ts-expect-error: not a device
  await CandleEmbedder.load('dir', { device: 'tpu' });
  // @ts-expect-error: pooling is mean or cls
  await CandleEmbedder.load('dir', { pooling: 'max' });
  // @ts-expect-error: ids are integers
  await emb.embedTokens({ ids: new Float32Array(2), shape: [1, 2] });
}
