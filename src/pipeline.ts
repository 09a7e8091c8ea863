/**
 * Streams: items of a (possibly async) source run in batches, the next batch gathered and
 * started while the current one runs (at most two in flight), results yielded in order.
 * TractModel.stream and CandleEmbedder.stream share it.
 */
import { InputShapeError, OxinferError, errorClass } from './errors';

/**
 * Yields `run`'s results for every item of `source`, in order. `run` gets a batch of up to
 * `batchSize` items and the stream index of the first; it must give one result per item.
 */
export async function* pipelined<I, O>(
  source: AsyncIterable<I> | Iterable<I>,
  batchSize: number,
  run: (items: I[], first: number) => Promise<O[]>,
): AsyncGenerator<O, void, undefined> {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new InputShapeError(`stream option batchSize must be a positive integer, got ${String(batchSize)}`);
  }
  let running: Promise<O[]> | undefined;
  let seen = 0; // items taken from the source
  const start = (items: I[]) => {
    const p = run(items, seen - items.length);
    p.catch(() => undefined); // surfaced when awaited below, in order
    return p;
  };
  let batch: I[] = [];
  for await (const item of source) {
    batch.push(item);
    seen++;
    if (batch.length < batchSize) continue;
    const next = start(batch);
    batch = [];
    if (running) yield* await running;
    running = next;
  }
  const last = batch.length > 0 ? start(batch) : undefined;
  if (running) yield* await running;
  if (last) yield* await last;
}

/**
 * A stream batch's error, naming the stream's item: a batch call names an item by its place in
 * the batch (`item` matches that prefix and captures the place, e.g. `request 1: `), which says
 * little to a caller of `stream`. Aborts and disposal pass through unchanged.
 */
export function inStream(e: unknown, first: number, count: number, item: RegExp): unknown {
  if (!(e instanceof OxinferError) || e.code === 'ERR_ABORTED' || e.code === 'ERR_DISPOSED') return e;
  const at = item.exec(e.message);
  // The rest of the message after the item: "input 'x': ..." follows a colon; " is a number"
  // reads on from the item's name.
  const rest = at ? e.message.slice(at[0].length) : '';
  const message = at
    ? `stream item ${first + Number(at[1])}${rest.startsWith(' ') ? rest : `: ${rest}`}`
    : `stream items ${first}..${first + count - 1}: ${e.message}`;
  return new (errorClass(e.code))(message, { cause: e });
}
