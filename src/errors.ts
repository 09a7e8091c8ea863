/**
 * Every failure reaches callers as an `OxinferError` subclass with a stable `code`.
 * Codes are API: they never change meaning. Messages name what was wrong, what was expected
 * and what was given.
 */

export type ErrorCode =
  | 'ERR_MODEL_LOAD'
  | 'ERR_INPUT_NAME'
  | 'ERR_INPUT_SHAPE'
  | 'ERR_INPUT_DTYPE'
  | 'ERR_INPUT_VALUE'
  | 'ERR_DEVICE_UNAVAILABLE'
  | 'ERR_ABORTED'
  | 'ERR_DISPOSED'
  | 'ERR_ENGINE'
  | 'ERR_QUEUE_FULL';

export class OxinferError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The model file could not be read, parsed, typed or optimized. */
export class ModelLoadError extends OxinferError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_MODEL_LOAD', message, options);
  }
}
/** An input is missing, unknown, or given twice. */
export class InputNameError extends OxinferError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INPUT_NAME', message, options);
  }
}
/** An input's shape does not match the model, or its data does not match its shape. */
export class InputShapeError extends OxinferError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INPUT_SHAPE', message, options);
  }
}
/** An input's element type does not match the model, or its data is not a typed array. */
export class InputDtypeError extends OxinferError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INPUT_DTYPE', message, options);
  }
}
/** An input's values are outside what the model accepts: a token id past its embedding table. */
export class InputValueError extends OxinferError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INPUT_VALUE', message, options);
  }
}
/** The requested device (CUDA, Metal) cannot be used here; the message says why. */
export class DeviceUnavailableError extends OxinferError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_DEVICE_UNAVAILABLE', message, options);
  }
}
/** The operation was aborted through its AbortSignal. */
export class AbortedError extends OxinferError {
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super('ERR_ABORTED', message, options);
  }
}
/** The model (or session) was disposed. */
export class DisposedError extends OxinferError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_DISPOSED', message, options);
  }
}
/** A Batcher's bounded queue is full: shed load or retry later. */
export class QueueFullError extends OxinferError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_QUEUE_FULL', message, options);
  }
}
/** The engine failed while running (an unsupported op at run time, an internal error). */
export class EngineError extends OxinferError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_ENGINE', message, options);
  }
}

const classes: Record<ErrorCode, new (message: string, options?: { cause?: unknown }) => OxinferError> = {
  ERR_MODEL_LOAD: ModelLoadError,
  ERR_INPUT_NAME: InputNameError,
  ERR_INPUT_SHAPE: InputShapeError,
  ERR_INPUT_DTYPE: InputDtypeError,
  ERR_INPUT_VALUE: InputValueError,
  ERR_DEVICE_UNAVAILABLE: DeviceUnavailableError,
  ERR_ABORTED: AbortedError,
  ERR_DISPOSED: DisposedError,
  ERR_ENGINE: EngineError,
  ERR_QUEUE_FULL: QueueFullError,
};

export const ERROR_CODES = Object.keys(classes) as ErrorCode[];

/** The error class for a code. */
export function errorClass(code: ErrorCode) {
  return classes[code];
}

const NATIVE_PREFIX = /^\[(ERR_[A-Z_]+)\] ([\s\S]*)$/;

/**
 * Converts whatever the native layer threw into an OxinferError. The native layer prefixes
 * its messages with `[ERR_…]`; an AbortError (a DOMException's name) becomes AbortedError;
 * anything else is an engine error that keeps the original as `cause`.
 */
export function fromNative(e: unknown): OxinferError {
  if (e instanceof OxinferError) return e;
  const err = e as { name?: unknown; message?: unknown } | null;
  const message = typeof err?.message === 'string' ? err.message : String(e);
  if (err?.name === 'AbortError') return new AbortedError(undefined, { cause: e });
  const m = NATIVE_PREFIX.exec(message);
  if (m && (m[1] as ErrorCode) in classes) {
    return new classes[m[1] as ErrorCode](m[2] ?? '', { cause: e });
  }
  return new EngineError(message, { cause: e });
}
