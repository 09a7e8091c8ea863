/** `oxinfer embed --model DIR TEXT...`: sentence vectors, their norms and pairwise similarities. */
import { CandleEmbedder, type EmbedderDevice, type EmbedderDType, type Pooling, cosineSimilarity } from '../embedder';
import { type Spec, UsageError, flag, parseArgs, positiveInt, str } from './args';

export const summary = 'embed sentences with a BERT-family model folder (candle)';

export const usage = `Usage: oxinfer embed --model DIR [options] TEXT [TEXT ...]

Loads DIR (a Hugging Face style folder: config.json, tokenizer.json, model.safetensors, e.g.
all-MiniLM-L6-v2) and embeds each TEXT. Prints each vector's size, norm and first values, then
the cosine similarity of every pair.

Options:
  --model DIR         the model folder (required)
  --device NAME       cpu (default), cuda, cuda:N, metal or auto
  --dtype NAME        float32 (default), float16, bfloat16 or int8 (CPU)
  --max-length N      tokens per text; longer texts are truncated
  --pooling NAME      mean or cls (default: the folder's pooling config, else mean)
  --no-normalize      keep raw pooled vectors (default: L2-normalized)
  --threads N         CPU threads (default: the CPUs this process may use)
  --json              print JSON (vectors included) instead of text`;

const spec: Spec = {
  model: { type: 'string' },
  device: { type: 'string' },
  dtype: { type: 'string' },
  'max-length': { type: 'string' },
  pooling: { type: 'string' },
  'no-normalize': { type: 'boolean' },
  threads: { type: 'string' },
  json: { type: 'boolean' },
};

export async function main(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv, spec);
  const dir = str(args, 'model');
  if (dir === undefined) throw new UsageError('--model DIR is required');
  const texts = args.positionals;
  if (texts.length === 0) throw new UsageError('give at least one TEXT to embed');
  const emb = await CandleEmbedder.load(dir, {
    device: str(args, 'device') as EmbedderDevice | undefined,
    dtype: str(args, 'dtype') as EmbedderDType | undefined,
    maxLength: positiveInt(args, 'max-length'),
    pooling: str(args, 'pooling') as Pooling | undefined,
    normalize: !flag(args, 'no-normalize'),
    threads: positiveInt(args, 'threads'),
  });
  const m = await emb.embed(texts);
  const rows = [...m];
  const norms = rows.map((v) => Math.hypot(...v));
  const pairs: Array<{ a: number; b: number; cosine: number }> = [];
  for (let a = 0; a < rows.length; a++) {
    for (let b = a + 1; b < rows.length; b++) pairs.push({ a, b, cosine: cosineSimilarity(rows[a]!, rows[b]!) });
  }
  if (flag(args, 'json')) {
    const out = {
      model: dir,
      device: emb.device,
      dtype: emb.dtype,
      dims: m.dims,
      texts: texts.map((text, i) => ({ text, norm: norms[i], vector: Array.from(rows[i]!) })),
      similarities: pairs,
    };
    process.stdout.write(JSON.stringify(out) + '\n');
  } else {
    const lines = [`${dir}: ${m.rows} texts, ${m.dims} dims, ${emb.device} ${emb.dtype}, ${emb.pooling} pooling`];
    texts.forEach((t, i) => {
      const head = Array.from(rows[i]!.subarray(0, 4), (x) => x.toFixed(4)).join(', ');
      lines.push(`  [${i}] norm ${norms[i]!.toFixed(4)}  [${head}, ...]  ${JSON.stringify(t)}`);
    });
    if (pairs.length > 0) {
      lines.push('cosine similarity:');
      for (const p of pairs) lines.push(`  [${p.a}] ~ [${p.b}]  ${p.cosine.toFixed(4)}`);
    }
    process.stdout.write(lines.join('\n') + '\n');
  }
  await emb.dispose();
}
