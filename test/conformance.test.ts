/**
 * ONNX backend conformance: the node test cases of Python's `onnx` package (generated into
 * .cache/fixtures/conformance by scripts/gen_fixtures.py), run through the Node API and
 * compared with the expected outputs the onnx package ships, at each case's rtol/atol.
 *
 * Cases listed in test/conformance-passing.txt must keep passing: a regression fails CI.
 * Cases that fail to load are tried again with their integer inputs as load-time constants
 * (tract plans shapes at load, so it needs axes, shapes and pads then); those are counted apart.
 * A case that newly passes is reported; add it to the list (`UPDATE_CONFORMANCE=1 npm run test:ts`).
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OxinferError, TractModel, type Feeds, type TensorData } from '../src/index';
import { loadNpy } from '../src/npy';
import { FIXTURES, ROOT, fixture } from './helpers';

interface Case {
  name: string;
  inputs: Array<{ name: string; dtype: string; shape: number[] }>;
  outputs: Array<{ name: string; dtype: string; shape: number[] }>;
  rtol: number;
  atol: number;
}

type Outcome = 'pass' | 'pass-constants' | 'mismatch' | 'load-error' | 'run-error';

function close(actual: TensorData, expected: TensorData, rtol: number, atol: number): boolean {
  if (actual.length !== expected.length) return false;
  for (let i = 0; i < actual.length; i++) {
    const a = Number(actual[i]);
    const e = Number(expected[i]);
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    if (a === e) continue; // also equal infinities
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) return false;
  }
  return true;
}

/**
 * Runs one case. With `constants`, integer inputs (axes, shapes, pads, sizes: what tract needs
 * to know when it plans the model) are given as load-time constants instead of run-time feeds.
 */
async function runCase(c: Case, constants: boolean): Promise<{ outcome: Outcome; detail: string }> {
  const dir = join(FIXTURES, 'conformance', c.name);
  const feeds: Feeds = {};
  const fixed: Feeds = {};
  c.inputs.forEach((inp, i) => {
    if (inp.name === '') return; // an omitted optional input
    const a = loadNpy(join(dir, `input_${i}.npy`));
    const integer = /^u?int/.test(a.dtype);
    (constants && integer ? fixed : feeds)[inp.name] = { data: a.data, shape: a.shape, dtype: a.dtype };
  });
  let model: TractModel;
  try {
    model = await TractModel.load(join(dir, 'model.onnx'), { constants: fixed });
  } catch (e) {
    if (!(e instanceof OxinferError)) throw e;
    return { outcome: 'load-error', detail: `${e.code}: ${e.message.slice(0, 200)}` };
  }
  try {
    const out = await model.run(feeds);
    for (const [i, o] of c.outputs.entries()) {
      const want = loadNpy(join(dir, `output_${i}.npy`));
      const got = out[o.name] ?? Object.values(out)[i];
      if (!got) return { outcome: 'mismatch', detail: `no output ${o.name}` };
      if (got.shape.join(',') !== want.shape.join(',')) {
        return { outcome: 'mismatch', detail: `${o.name}: shape [${got.shape}] != [${want.shape}]` };
      }
      if (!close(got.data, want.data, c.rtol, c.atol)) return { outcome: 'mismatch', detail: `${o.name}: values differ` };
    }
    return { outcome: constants ? 'pass-constants' : 'pass', detail: '' };
  } catch (e) {
    if (!(e instanceof OxinferError)) throw e;
    return { outcome: 'run-error', detail: `${e.code}: ${e.message.slice(0, 200)}` };
  } finally {
    await model.dispose();
  }
}

describe('ONNX backend node conformance', () => {
  it('keeps every listed case passing; failures are typed errors, never crashes', async () => {
    const cases = JSON.parse(readFileSync(fixture('conformance/index.json'), 'utf8')) as Case[];
    const listPath = join(ROOT, 'test', 'conformance-passing.txt');
    const listed = readFileSync(listPath, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    const results = new Map<string, { outcome: Outcome; detail: string }>();
    for (const c of cases) {
      let r = await runCase(c, false);
      if (r.outcome === 'load-error' && c.inputs.some((i) => /^u?int/.test(i.dtype))) {
        const again = await runCase(c, true);
        if (again.outcome === 'pass-constants') r = again;
      }
      results.set(c.name, r);
    }

    // A listed name passes as is; `name +constants` passes with its integer inputs as constants.
    const key = (n: string, r: { outcome: Outcome }) => (r.outcome === 'pass-constants' ? `${n} +constants` : n);
    const passing = [...results].filter(([, r]) => r.outcome.startsWith('pass')).map(([n, r]) => key(n, r));
    const counts: Record<Outcome, number> = { pass: 0, 'pass-constants': 0, mismatch: 0, 'load-error': 0, 'run-error': 0 };
    for (const r of results.values()) counts[r.outcome]++;
    mkdirSync(join(ROOT, '.cache'), { recursive: true });
    writeFileSync(join(ROOT, '.cache', 'conformance-report.json'), JSON.stringify({ counts, results: Object.fromEntries(results) }, null, 1));
    console.log(`conformance: ${counts.pass} of ${cases.length} pass, ${counts['pass-constants']} more with load-time constants`, counts);
    if (process.env.UPDATE_CONFORMANCE) {
      const onnx = /^onnx==(.+)$/m.exec(readFileSync(join(ROOT, 'scripts', 'requirements.txt'), 'utf8'))?.[1];
      writeFileSync(listPath, `# ONNX node test cases (onnx ${onnx}) that pass through oxinfer; see test/conformance.test.ts\n${passing.join('\n')}\n`);
    }
    const got = new Set(passing);
    const regressed = listed.filter((n) => !got.has(n)).map((n) => `${n}: ${JSON.stringify(results.get(n.split(' ')[0]!))}`);
    expect(regressed).toEqual([]);
    expect(listed.length).toBeGreaterThan(500);
  }, 600_000);
});
