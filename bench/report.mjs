/** Results table and JSON files: one job, reporting. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const UNIT_DIGITS = { 'µs/call': 2, 'µs/frame': 2, 'sentences/s': 1, 'images/s': 1, ms: 1 };

export function fmt(x, unit) {
  if (x === undefined || x === null || Number.isNaN(x)) return 'n/a';
  const d = UNIT_DIGITS[unit] ?? 2;
  return `${x.toFixed(d)} ${unit}`;
}

/** 'met' or 'missed by ...' for a row's target, or '' when it has none. */
export function verdict(row) {
  const t = row.target;
  if (!t) return { text: '', met: undefined };
  const value = t.on === 'ratio' ? row.ratio : row.oxinfer?.median;
  if (value === undefined || Number.isNaN(value)) return { text: 'n/a', met: undefined };
  const met = t.op === '<=' ? value <= t.value : value >= t.value;
  const shown = t.on === 'ratio' ? `${value.toFixed(2)}x` : `${value.toFixed(2)} ${row.unit}`;
  const goal = `${t.op} ${t.value}${t.on === 'ratio' ? 'x' : ` ${row.unit}`}`;
  if (met) return { text: `met (${goal})`, met };
  // How far off: for ratios, by how much oxinfer would need to speed up.
  const factor = t.op === '<=' ? value / t.value : t.value / value;
  return { text: `MISSED (${goal}; ${shown}, ${factor.toFixed(2)}x off)`, met };
}

function pad(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`);
}

/** A Markdown table of medians, ratios (oxinfer / peer) and targets. */
export function table(rows) {
  const head = ['case', 'oxinfer (median)', 'onnxruntime-node (median)', 'ratio ox/ort', 'better', 'target'];
  const body = rows.map((r) => [
    r.label,
    r.oxinfer ? fmt(r.oxinfer.median, r.unit) : r.note ?? 'n/a',
    r.peer ? fmt(r.peer.median, r.unit) : 'n/a',
    r.ratio === undefined || Number.isNaN(r.ratio) ? 'n/a' : `${r.ratio.toFixed(2)}x`,
    r.better ? `${r.better} is better` : '',
    verdict(r).text,
  ]);
  const lines = pad([head, ...body]);
  lines.splice(1, 0, lines[0].replace(/[^|]/g, '-'));
  return lines.join('\n');
}

/** min–max spread per row, for the reader who wants to see the noise. */
export function spread(rows) {
  return rows
    .filter((r) => r.oxinfer)
    .map((r) => {
      const s = (x) => (x ? `${fmt(x.min, r.unit)} – ${fmt(x.max, r.unit)} (n=${x.n})` : 'n/a');
      return `  ${r.label}: oxinfer ${s(r.oxinfer)}; ort ${s(r.peer)}${r.extra ? `; ${r.extra}` : ''}`;
    })
    .join('\n');
}

export function writeResults(dir, result) {
  mkdirSync(dir, { recursive: true });
  const day = result.startedAt.slice(0, 10);
  const json = `${JSON.stringify(result, null, 2)}\n`;
  const files = [join(dir, 'latest.json'), join(dir, `${day}.json`)];
  for (const f of files) writeFileSync(f, json);
  return files;
}
