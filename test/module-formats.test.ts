import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fixture, ROOT } from './helpers';

// The built package (dist/) as users import it: `import` and `require` both work, and give the
// same classes (the ESM entry wraps the CommonJS build).
describe('module formats', () => {
  const model = JSON.stringify(fixture('add.onnx'));
  const body = `
    const m = await TractModel.load(${model});
    const out = await m.run({ a: new Float32Array([2]), b: new Float32Array([3]) });
    console.log(out.c.data[0], typeof OxinferError);`;

  it('works from ESM', () => {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', `import { TractModel, OxinferError } from 'oxinfer';\n${body}`], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('5 function');
  });

  it('works from CommonJS', () => {
    const out = execFileSync(process.execPath, ['-e', `const { TractModel, OxinferError } = require('oxinfer');\n(async () => {${body}})()`], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('5 function');
  });

  it('ESM and CommonJS share one copy of each class', () => {
    const out = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', `import { createRequire } from 'node:module'; import { TractModel } from 'oxinfer'; const r = createRequire(import.meta.url)('oxinfer'); console.log(r.TractModel === TractModel);`],
      { cwd: ROOT, encoding: 'utf8' },
    );
    expect(out.trim()).toBe('true');
  });
});
