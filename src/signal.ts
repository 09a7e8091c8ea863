/**
 * AbortSignal helpers shared by every async API.
 *
 * A service often passes one signal to many calls at once (its shutdown signal, a deadline
 * shared by a request's sub-calls). One 'abort' listener per call made Node warn of a leak past
 * ten ("MaxListenersExceededWarning: Possible EventTarget memory leak detected") and costs an
 * O(listeners) scan per add; so each signal gets one listener here, however many calls watch it
 * ({@link watch}), and one native cancel token, however many native tasks read it ({@link tokenFor}).
 */
import { AbortedError } from './errors';

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedError(signal);
}

/** The error an aborted call rejects with; names the signal's reason when it has one. */
export function abortedError(signal: AbortSignal): AbortedError {
  const reason = signal.reason as unknown;
  const why = reason instanceof Error ? reason.message : reason === undefined ? '' : String(reason);
  return new AbortedError(why ? `the operation was aborted: ${why}` : 'the operation was aborted');
}

/** The calls waiting on one signal, and its one listener that calls them. */
interface Watchers {
  callbacks: Set<() => void>;
  fire: () => void;
}

const watched = new WeakMap<AbortSignal, Watchers>();

/**
 * Calls `onAbort` once when `signal` aborts (at once if it already has); the returned function
 * stops watching. The signal's listener goes when its last watcher does.
 */
export function watch(signal: AbortSignal, onAbort: () => void): () => void {
  if (signal.aborted) {
    onAbort();
    return () => undefined;
  }
  let w = watched.get(signal);
  if (!w) {
    const callbacks = new Set<() => void>();
    const fire = () => {
      watched.delete(signal);
      const all = [...callbacks];
      callbacks.clear();
      for (const f of all) f();
    };
    w = { callbacks, fire };
    watched.set(signal, w);
    signal.addEventListener('abort', fire, { once: true });
  }
  // A function of its own, so that one `onAbort` watched twice is two entries.
  const entry = () => onAbort();
  const mine = w;
  mine.callbacks.add(entry);
  return () => {
    if (!mine.callbacks.delete(entry) || mine.callbacks.size > 0) return;
    signal.removeEventListener('abort', mine.fire);
    if (watched.get(signal) === mine) watched.delete(signal);
  };
}

/** What a native cancel token class looks like (each addon binary has its own class). */
interface CancelToken {
  cancel(): void;
}

const tokens = new WeakMap<AbortSignal, Map<new () => CancelToken, CancelToken>>();

/**
 * The native cancel token of `signal` for the addon whose class is `Token`: set when the signal
 * aborts. One per signal (and addon), shared by every task that reads it, and freed with the
 * signal. Undefined without a signal: the task then runs to the end.
 */
export function tokenFor<T extends CancelToken>(signal: AbortSignal | undefined, Token: new () => T): T | undefined {
  if (!signal) return undefined;
  let bySignal = tokens.get(signal);
  if (!bySignal) tokens.set(signal, (bySignal = new Map()));
  let token = bySignal.get(Token) as T | undefined;
  if (!token) {
    const t = new Token();
    bySignal.set(Token, t);
    // Never unwatched: the token lives as long as the signal, and so does this one entry.
    watch(signal, () => t.cancel());
    token = t;
  }
  return token;
}

/**
 * Settles with `work`, or rejects with AbortedError as soon as `signal` aborts: aborted work
 * never delivers a result (native work running meanwhile stops at its next step through the
 * signal's token, see tokenFor, and whatever it returns is dropped).
 */
export function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortedError(signal));
    if (signal.aborted) return onAbort();
    const unwatch = watch(signal, onAbort);
    work.then(
      (v) => {
        unwatch();
        if (signal.aborted) onAbort();
        else resolve(v);
      },
      (e: unknown) => {
        unwatch();
        reject(e);
      },
    );
  });
}
