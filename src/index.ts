/**
 * oxinfer: fast ML inference for Node.js on Rust engines.
 *
 * ```ts
 * import { TractModel } from 'oxinfer';
 * const model = await TractModel.load('model.onnx');
 * const out = await model.run({ input: { data: new Float32Array(3 * 224 * 224), shape: [1, 3, 224, 224] } });
 * ```
 */
export { TractModel, TractSession } from './tract-model';
export { CandleEmbedder, Embeddings, cosineSimilarity } from './embedder';
export type { EmbedderLoadOptions, EmbedOptions, TokenBatch, EmbedderDevice, EmbedderDType, Pooling } from './embedder';
export { cache } from './cache';
export type { CacheStats, CacheEntry } from './cache';
export { Batcher } from './batcher';
export type { BatcherOptions } from './batcher';
export { EmbedBatcher } from './embed-batcher';
export type { EmbedBatcherOptions } from './embed-batcher';
export type { TractLoadOptions, ExternalDataFile, InputFact, RunOptions, SessionOptions, OpCount, Precision } from './tract-model';
export type { DType, Dim, TensorInfo, TensorData, TensorInput, Feeds, Tensor, Outputs } from './tensor';
export {
  OxinferError,
  ModelLoadError,
  InputNameError,
  InputShapeError,
  InputDtypeError,
  InputValueError,
  DeviceUnavailableError,
  AbortedError,
  DisposedError,
  EngineError,
  QueueFullError,
  ERROR_CODES,
} from './errors';
export type { ErrorCode } from './errors';
export { platformTriple, nativeAddonPath } from './native';
