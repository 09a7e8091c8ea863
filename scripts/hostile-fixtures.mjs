// The hostile ONNX models of scripts/gen_hostile.py, in .cache/fixtures/hostile: generated when
// missing or when their generator changed. scripts/fixtures.mjs calls this, so the Rust tests
// (which fuzz these seeds) and the TypeScript tests find them; bench/fuzz.mjs calls it too.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Returns the folder of the hostile models, generating them first if needed. */
export function ensureHostile(root) {
  const out = join(root, '.cache', 'fixtures', 'hostile');
  const script = join(root, 'scripts', 'gen_hostile.py');
  const want = createHash('sha256').update(readFileSync(script)).digest('hex');
  const stamp = join(out, '.stamp');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return out;
  execFileSync(join(root, '.venv', 'bin', 'python'), [script, '--out', out], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  writeFileSync(stamp, want);
  return out;
}
