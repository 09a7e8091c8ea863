/**
 * The model cache both engines load through. Loading the same file (path, size, mtime) or
 * bytes with the same options returns the same native model, and concurrent loads of one key
 * load it once. Each load returns its own handle; `dispose()` releases it. By default a model
 * is freed when its last handle goes; with a budget, models nobody holds stay warm until their
 * total size exceeds it, then the least recently used go first.
 */
import { call } from './call';
import { native } from './native';

export interface CacheEntry {
  /** What identifies the load: engine, file identity and options. */
  key: string;
  engine: 'tract' | 'candle';
  /** Live handles (loads in progress count their waiting callers). */
  holders: number;
  /** Estimated memory (the weights' or model file's size). */
  bytes: number;
}

export interface CacheStats {
  entries: CacheEntry[];
  /** Loads that did the work. */
  loads: number;
  /** Loads answered by a model already loaded or loading. */
  hits: number;
  evictions: number;
  bytes: number;
  /** Bytes of unheld models kept warm; null: none are kept. */
  budget: number | null;
}

export const cache = {
  stats(): CacheStats {
    const s = call(() => native().cacheStats());
    return {
      entries: s.entries.map((e) => ({ ...e, engine: e.engine as CacheEntry['engine'] })),
      loads: s.loads,
      hits: s.hits,
      evictions: s.evictions,
      bytes: s.bytes,
      budget: s.budget ?? null,
    };
  },
  /** Keep models nobody holds while their total stays within `bytes`; null (default): keep none. */
  setBudget(bytes: number | null): void {
    if (bytes !== null && !(Number.isFinite(bytes) && bytes >= 0)) {
      throw new RangeError(`cache budget must be a non-negative number of bytes or null, got ${String(bytes)}`);
    }
    call(() => native().setCacheBudget(bytes ?? undefined));
  },
  /** Frees every model nobody holds. */
  clear(): void {
    call(() => native().clearCache());
  },
};
