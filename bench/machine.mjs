/** Machine description for the results file: one job, saying where the numbers come from. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';

function cpuModel() {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => /^model name\s*:/.test(l));
    if (line) return line.split(':').slice(1).join(':').trim();
  } catch {}
  return os.cpus()[0]?.model ?? 'unknown';
}

/** version field of the package.json above `entry` (a resolved module path). */
function packageVersion(entry, name) {
  let dir = dirname(entry);
  for (let i = 0; i < 6; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (pkg.name === name) return pkg.version;
    } catch {}
  }
  return 'unknown';
}

function gitCommit(root) {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

export function describeMachine(root, { threads, nativeAddonPath }) {
  const require = createRequire(join(root, 'package.json'));
  return {
    cpu: cpuModel(),
    coresAvailable: os.availableParallelism(),
    logicalCpus: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${process.platform}-${process.arch}`,
    kernel: os.release(),
    node: process.version,
    onnxruntimeNode: packageVersion(require.resolve('onnxruntime-node'), 'onnxruntime-node'),
    oxinfer: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
    oxinferAddon: nativeAddonPath?.startsWith(root) ? nativeAddonPath.slice(root.length + 1) : nativeAddonPath,
    gitCommit: gitCommit(root),
    threads,
    uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE) || 4,
  };
}
