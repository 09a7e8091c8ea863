/** AbortSignal helpers shared by every async API. */
import { AbortedError } from './errors';

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError(abortMessage(signal));
}

function abortMessage(signal: AbortSignal): string {
  const reason = signal.reason as unknown;
  const why = reason instanceof Error ? reason.message : reason === undefined ? '' : String(reason);
  return why ? `the operation was aborted: ${why}` : 'the operation was aborted';
}

/**
 * Settles with `work`, or rejects with AbortedError as soon as `signal` aborts: aborted work
 * never delivers a result (work already running finishes in the background and is dropped).
 */
export function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError(abortMessage(signal)));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) onAbort();
        else resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
