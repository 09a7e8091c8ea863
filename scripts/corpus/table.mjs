// Prints the corpus table (markdown) for the README from the corpus test's outcomes
// (.cache/corpus-outcomes.json, written by `npm run test:corpus`), the manifest, and the
// speed ratios of a `real` benchmark run (bench/results/*.json with the `real` case).
//   node scripts/corpus/table.mjs [--bench bench/results/FILE.json]
// A cell reads "<ratio>x" when the entry loads and matches onnxruntime (its oxinfer / ort time
// ratio: the geometric mean of its two shapes), "*" marks the entries planned per input shape,
// "differs" / "no load" the others, "–" a form the generator does not make. Exporters are
// abbreviated: "torch TS" is torch.onnx.export's TorchScript exporter.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readEntries } from '../../test/corpus/draw.mjs';

const root = join(import.meta.dirname, '..', '..');
const args = process.argv.slice(2);
const benchArg = args.indexOf('--bench') >= 0 ? args[args.indexOf('--bench') + 1] : undefined;

/** The newest results file that has the `real` case. */
function newestReal() {
  const dir = join(root, 'bench', 'results');
  // latest.json is whichever run came last, of any cases: the dated files are the record.
  const files = readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'latest.json').sort().reverse();
  for (const f of files) {
    const r = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    if (Array.isArray(r.cases) && r.cases.some((c) => c.name === 'real')) return join(dir, f);
  }
  return undefined;
}

const entries = readEntries(join(root, 'test', 'corpus'));
const outcomes = new Map(JSON.parse(readFileSync(join(root, '.cache', 'corpus-outcomes.json'), 'utf8')).map((o) => [o.id, o]));
const benchFile = benchArg ?? newestReal();
const ratios = new Map();
if (benchFile) {
  const real = JSON.parse(readFileSync(benchFile, 'utf8')).cases.find((c) => c.name === 'real');
  for (const row of real.rows) {
    const id = row.label.split(' ')[0];
    if (typeof row.ratio === 'number' && id.includes('/')) ratios.set(id, [...(ratios.get(id) ?? []), row.ratio]);
  }
}
const geomean = (xs) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);

const forms = ['fp32', 'int8-dyn', 'int8-qdq', 'int8-qop', 'fp16', 'extdata'];
const families = [...new Set(entries.map((e) => e.family))];
const cell = (family, form) => {
  const id = `${family}/${form}`;
  const o = outcomes.get(id);
  if (!entries.some((e) => e.id === id)) return '–';
  if (!o) return '?';
  if (!o.loaded) return 'no load';
  if (!o.matches) return 'differs';
  const r = ratios.get(id);
  const speed = r ? `${geomean(r).toFixed(2)}x` : 'yes';
  return o.planning === 'per-shape' ? `${speed}*` : speed;
};
const exporter = (family) => entries.find((e) => e.family === family).exporter.replace('torch.onnx.export (TorchScript)', 'torch TS');
console.log(`| model | exporter | ${forms.join(' | ')} |`);
console.log(`|---|---|${forms.map(() => '---').join('|')}|`);
for (const f of families) console.log(`| ${f} | ${exporter(f)} | ${forms.map((form) => cell(f, form)).join(' | ')} |`);
const all = [...outcomes.values()];
const measured = [...ratios.values()].flat();
console.log(
  `\n${all.filter((o) => o.loaded).length} of ${entries.length} load with no shape hints, ${all.filter((o) => o.matches).length} match onnxruntime; ` +
    `${all.filter((o) => o.planning === 'per-shape').length} planned per shape (*).` +
    (measured.length ? ` Geometric mean of the time ratios: ${geomean(measured).toFixed(2)}x over ${measured.length} entry-shapes (${benchFile.replace(`${root}/`, '')}).` : ''),
);
