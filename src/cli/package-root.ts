/** Finds files shipped with the package (models/, assets/, package.json). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let root: string | undefined;

/**
 * The package root: the nearest folder above this file with oxinfer's package.json
 * (dist/cjs/cli/ → ../../.., or src/cli/ → ../.. when run from source).
 */
export function packageRoot(): string {
  if (root) return root;
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'oxinfer') {
      return (root = dir);
    }
    if (dirname(dir) === dir) throw new Error(`cannot find oxinfer's package.json above ${__dirname}`);
  }
}

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}
