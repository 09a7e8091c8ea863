// A profiling workload for the GPU (run under nsys from the GPU check folder): all-MiniLM-L6-v2,
// batch 256 x 128 tokens, 5 calls after a warm-up, in the dtype given (default float32):
//   nsys profile --stats=true ./node profile.mjs float16
import { createRequire } from 'node:module';
import { join } from 'node:path';

const here = import.meta.dirname;
const { CandleEmbedder } = createRequire(join(here, 'package.json'))('./dist/cjs/index.js');
const dtype = process.argv[2] ?? 'float32';
const emb = await CandleEmbedder.load(join(here, 'all-MiniLM-L6-v2'), { device: 'cuda', dtype, cache: false });
const ids = Int32Array.from({ length: 256 * 128 }, (_, i) => 1000 + ((i * 7919) % 28000));
for (let i = 0; i < 3; i++) await emb.embedTokens({ ids, shape: [256, 128] }, { batchSize: 256 });
const t0 = performance.now();
for (let i = 0; i < 5; i++) await emb.embedTokens({ ids, shape: [256, 128] }, { batchSize: 256 });
console.log(`${dtype} batch 256: ${((performance.now() - t0) / 5).toFixed(2)} ms per call`);
await emb.dispose();
