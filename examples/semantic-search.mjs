// Semantic search over a handful of sentences with CandleEmbedder (the README's example).
// Run: node examples/semantic-search.mjs [MODEL_DIR] ["query"]
import { CandleEmbedder } from 'oxinfer';

const dir = process.argv[2] ?? '.cache/models/all-MiniLM-L6-v2';
const queryText = process.argv[3] ?? 'feline pets';

const emb = await CandleEmbedder.load(dir);
const docs = [
  'The cat sits on the mat.',
  'A dog is running in the park.',
  'Stock markets fell sharply today.',
  'Kittens love to nap in the sun.',
  'The central bank raised interest rates.',
];
const vectors = await emb.embed(docs);
const [query] = await emb.embed([queryText]);

// Vectors are normalized, so the dot product is the cosine similarity.
const ranked = docs
  .map((text, i) => ({ text, score: vectors.row(i).reduce((s, x, k) => s + x * query[k], 0) }))
  .sort((a, b) => b.score - a.score);
console.log(JSON.stringify({ query: queryText, ranked }, null, 1));
await emb.dispose();
