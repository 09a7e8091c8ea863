// Loads the encoder given as argv[2], runs it twice at batch BATCH (default 4), S = 128, waits
// 1.5 s, then counts the minor page faults of one more run. Prints {"faults": n, "ms": t}.
// Used by test/memory.test.ts.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { TractModel } = require('../../dist/cjs/index.js');

const S = 128;
const N = Number(process.env.BATCH ?? 4);
// One thread and runSync: every allocation on this thread, so what mimalloc purged during the
// pause is what the run faults back (with pool threads the heaps that serve a run vary).
const model = await TractModel.load(process.argv[2], { threads: 1 });
const shape = [N, S];
const ids = new BigInt64Array(N * S).map((_, i) => BigInt(1 + ((i * 7919) % 30000)));
const feeds = {
  input_ids: { data: ids, shape },
  attention_mask: { data: new BigInt64Array(N * S).fill(1n), shape },
  token_type_ids: { data: new BigInt64Array(N * S), shape },
};
model.runSync(feeds);
model.runSync(feeds);
await new Promise((resolve) => setTimeout(resolve, 1500));
const before = process.resourceUsage().minorPageFault;
const t = performance.now();
model.runSync(feeds);
const faults = process.resourceUsage().minorPageFault - before;
const ms = performance.now() - t;
console.log(JSON.stringify({ faults, ms }));
