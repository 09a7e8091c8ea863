/** Calls into the native layer, turning whatever it throws or rejects with into OxinferErrors. */
import { fromNative } from './errors';
import { abortable, throwIfAborted } from './signal';

/** Calls the native layer synchronously. */
export function call<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw fromNative(e);
  }
}

const rethrow = (e: unknown): never => {
  throw fromNative(e);
};

/** Starts async work, converting whatever it throws or rejects with into OxinferErrors. Plain
 * promise chaining (no async function) keeps the per-call overhead to one extra tick. */
export function callAsync<T>(f: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  try {
    throwIfAborted(signal);
    return abortable(f(), signal).then(undefined, rethrow);
  } catch (e) {
    return Promise.reject(fromNative(e));
  }
}
