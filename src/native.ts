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

/** Where one attempt looks, and how. */
interface Candidate {
  what: string;
  resolve: () => string | undefined; // a path or package to require; undefined: not there
}

function candidates(): Candidate[] {
  const triple = platformTriple();
  const list: Candidate[] = [];
  const override = process.env.OXINFER_NATIVE_PATH;
  if (override) list.push({ what: `OXINFER_NATIVE_PATH=${override}`, resolve: () => override });
  // prebuildify layout (the fat tarball for Electron and offline bundles), found by node-gyp-build.
  list.push({
    what: join(PACKAGE_ROOT, 'prebuilds', `${process.platform}-${process.arch}`),
    resolve: () => {
      if (!existsSync(join(PACKAGE_ROOT, 'prebuilds'))) return undefined;
      return (require('node-gyp-build') as { path(dir: string): string }).path(PACKAGE_ROOT);
    },
  });
  // A local build (`npm run build`) in the package root.
  const local = join(PACKAGE_ROOT, `oxinfer.${triple}.node`);
  list.push({ what: local, resolve: () => (existsSync(local) ? local : undefined) });
  // The per-platform package that npm installs as an optional dependency.
  list.push({ what: `the package oxinfer-${triple}`, resolve: () => `oxinfer-${triple}` });
  return list;
}

let cached: { binding: NativeBinding; path: string } | undefined;

function load(): { binding: NativeBinding; path: string } {
  if (cached) return cached;
  const tried: string[] = [];
  for (const c of candidates()) {
    let target: string | undefined;
    try {
      target = c.resolve();
      if (target === undefined) {
        tried.push(`${c.what} (not found)`);
        continue;
      }
      const binding = require(target) as NativeBinding;
      cached = { binding, path: require.resolve(target) };
      return cached;
    } catch (e) {
      tried.push(`${c.what} (${(e as Error).message.split('\n')[0]})`);
    }
  }
  throw new Error(
    `oxinfer: no native addon for ${platformTriple()} (Node ${process.version}). Tried:\n  ` +
      tried.join('\n  ') +
      `\nInstall with optional dependencies enabled (npm install oxinfer; the binary comes in oxinfer-${platformTriple()}), ` +
      'use the prebuilds/ tarball, build from source with `npm run build`, or point OXINFER_NATIVE_PATH at an oxinfer .node file.',
  );
}

export function native(): NativeBinding {
  return load().binding;
}

let cuda: { binding: NativeBinding; path: string } | { reason: string } | undefined;

/**
 * The CUDA build of the addon (a separate .node that links the CUDA libraries), for the candle
 * engine's `device: 'cuda' | 'auto'`. Order: OXINFER_CUDA_NATIVE_PATH → oxinfer.<triple>.cuda.node
 * in the package root → the package oxinfer-<triple>-cuda. Returns why when none loads (not
 * installed, or its CUDA libraries / driver are missing here).
 */
export function cudaNative(): { binding: NativeBinding; path: string } | { reason: string } {
  if (cuda) return cuda;
  const triple = platformTriple();
  const local = join(PACKAGE_ROOT, `oxinfer.${triple}.cuda.node`);
  const list: Candidate[] = [];
  const override = process.env.OXINFER_CUDA_NATIVE_PATH;
  if (override) list.push({ what: `OXINFER_CUDA_NATIVE_PATH=${override}`, resolve: () => override });
  list.push({ what: local, resolve: () => (existsSync(local) ? local : undefined) });
  list.push({ what: `the package oxinfer-${triple}-cuda`, resolve: () => `oxinfer-${triple}-cuda` });
  const tried: string[] = [];
  for (const c of list) {
    try {
      const target = c.resolve();
      if (target === undefined) {
        tried.push(`${c.what} (not found)`);
        continue;
      }
      const binding = require(target) as NativeBinding;
      if (!binding.compiledBackends().includes('cuda')) {
        tried.push(`${c.what} (not a CUDA build)`);
        continue;
      }
      return (cuda = { binding, path: require.resolve(target) });
    } catch (e) {
      tried.push(`${c.what} (${(e as Error).message.split('\n')[0]})`);
    }
  }
  return (cuda = { reason: `the CUDA build of oxinfer did not load; tried ${tried.join('; ')}` });
}

/** The file the native addon was loaded from (loading it if needed): for support and checks. */
export function nativeAddonPath(): string {
  return load().path;
}
