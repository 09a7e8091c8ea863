// Makes sure the generated test fixtures exist (.cache/fixtures), regenerating them when the
// generator or its pinned requirements change. Runs the Python venv setup when needed.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const out = join(root, '.cache', 'fixtures');
const stamp = join(out, '.stamp');
const hash = createHash('sha256');
for (const f of ['scripts/gen_fixtures.py', 'scripts/requirements.txt']) hash.update(readFileSync(join(root, f)));
const want = hash.digest('hex');

if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want && existsSync(join(out, 'fixtures.json'))) {
  process.exit(0);
}
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
console.log('fixtures: setting up the Python venv and generating test models into .cache/fixtures');
run('bash', ['scripts/setup-python.sh']);
run(join(root, '.venv', 'bin', 'python'), ['scripts/gen_fixtures.py', '--out', out]);
writeFileSync(stamp, want);
