// Prints the corpus table (markdown) for README from the corpus test's outcomes
// (.cache/corpus-outcomes.json, written by `npm run test:corpus`) and the manifest.
//   node scripts/corpus/table.mjs
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readEntries } from '../../test/corpus/draw.mjs';

const root = join(import.meta.dirname, '..', '..');
const entries = readEntries(join(root, 'test', 'corpus'));
const outcomes = new Map(JSON.parse(readFileSync(join(root, '.cache', 'corpus-outcomes.json'), 'utf8')).map((o) => [o.id, o]));
const forms = ['fp32', 'int8-dyn', 'int8-qdq', 'int8-qop', 'fp16', 'extdata'];
const families = [...new Set(entries.map((e) => e.family))];
const cell = (family, form) => {
  const o = outcomes.get(`${family}/${form}`);
  if (!entries.some((e) => e.id === `${family}/${form}`)) return '–';
  if (!o) return '?';
  if (!o.loaded) return 'no load';
  if (!o.matches) return 'differs';
  return o.planning === 'per-shape' ? 'yes (per shape)' : 'yes';
};
console.log(`| model | ${forms.join(' | ')} |`);
console.log(`|---|${forms.map(() => '---').join('|')}|`);
for (const f of families) console.log(`| ${f} | ${forms.map((form) => cell(f, form)).join(' | ')} |`);
const all = [...outcomes.values()];
console.log(`\n${all.filter((o) => o.matches).length} of ${entries.length} match; ${all.filter((o) => o.planning === 'per-shape').length} planned per shape.`);
