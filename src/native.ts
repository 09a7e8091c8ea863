/**
 * Finds and loads the native addon. Order: an explicit path in OXINFER_NATIVE_PATH →
 * prebuilds/<platform>-<arch>/oxinfer.node (prebuildify layout) → oxinfer.<triple>.node in the
 * package root (a local build) → the per-platform npm package. Fails with every path tried.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type * as Native from '../index';

export type NativeBinding = typeof Native;

/** The folder of oxinfer's package.json, from dist/cjs/ or src/ alike. */
function packageRoot(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'oxinfer') return dir;
      } catch {
        // not ours; keep looking
      }
    }
    if (dirname(dir) === dir) return join(__dirname, '..', '..');
  }
}

export const PACKAGE_ROOT = packageRoot();

function isMusl(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    return !report?.header?.glibcVersionRuntime;
  }
}

/** The napi-rs platform triple of this process, e.g. `linux-x64-gnu`. */
export function platformTriple(): string {
  const { platform, arch } = process;
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

function candidates(): string[] {
  const triple = platformTriple();
  const list: string[] = [];
  if (process.env.OXINFER_NATIVE_PATH) list.push(process.env.OXINFER_NATIVE_PATH);
  list.push(join(PACKAGE_ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'oxinfer.node'));
  list.push(join(PACKAGE_ROOT, `oxinfer.${triple}.node`));
  list.push(`oxinfer-${triple}`);
  return list;
}

let cached: NativeBinding | undefined;

export function native(): NativeBinding {
  if (cached) return cached;
  const tried: string[] = [];
  for (const candidate of candidates()) {
    const isFile = candidate.endsWith('.node');
    if (isFile && !existsSync(candidate)) {
      tried.push(`${candidate} (not found)`);
      continue;
    }
    try {
      cached = require(candidate) as NativeBinding;
      return cached;
    } catch (e) {
      tried.push(`${candidate} (${(e as Error).message.split('\n')[0]})`);
    }
  }
  throw new Error(
    `oxinfer: no native addon for ${platformTriple()} (Node ${process.version}). Tried:\n  ` +
      tried.join('\n  ') +
      '\nInstall the platform package (npm install oxinfer with optional dependencies enabled), ' +
      'build from source with `npm run build`, or point OXINFER_NATIVE_PATH at an oxinfer .node file.',
  );
}
