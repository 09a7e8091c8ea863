/**
 * A small argv parser: `--name value`, `--name=value`, boolean `--flag`, repeatable options,
 * `-h`, and `--` to end options. Anything it does not know is a UsageError.
 */
import { ARRAY_FOR_DTYPE, type DType, type Feeds } from '../tensor';

/** A mistake in how the command was called: the CLI prints usage and exits with 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface OptionSpec {
  /** `string` takes a value; `boolean` does not. */
  type: 'string' | 'boolean';
  /** May be given more than once (values collected in order). */
  multiple?: boolean;
  /** One-letter alias, without the dash. */
  short?: string;
}

export type Spec = Record<string, OptionSpec>;

export interface Parsed {
  positionals: string[];
  /** string for single string options, string[] for multiple ones, true for flags. */
  options: Record<string, string | string[] | true | undefined>;
}

export function parseArgs(argv: readonly string[], spec: Spec): Parsed {
  const positionals: string[] = [];
  const options: Parsed['options'] = {};
  const byShort = new Map(Object.entries(spec).flatMap(([n, s]) => (s.short ? [[s.short, n] as const] : [])));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else if (arg.length === 2 && arg[0] === '-' && arg[1] !== '-') {
      const long = byShort.get(arg[1]!);
      if (long === undefined) throw new UsageError(`unknown option '${arg}'`);
      name = long;
    } else {
      positionals.push(arg);
      continue;
    }
    const s = spec[name];
    if (!s) throw new UsageError(`unknown option '--${name}'`);
    let value: string | true;
    if (s.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`option '--${name}' takes no value`);
      value = true;
    } else if (inline !== undefined) {
      value = inline;
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`option '--${name}' needs a value`);
      value = next;
      i++;
    }
    if (s.multiple) {
      const list = (options[name] as string[] | undefined) ?? [];
      list.push(value as string);
      options[name] = list;
    } else {
      if (options[name] !== undefined) throw new UsageError(`option '--${name}' given twice`);
      options[name] = value;
    }
  }
  return { positionals, options };
}

/** The value of a single string option. */
export function str(p: Parsed, name: string): string | undefined {
  const v = p.options[name];
  return typeof v === 'string' ? v : undefined;
}

/** The values of a repeatable option (empty if not given). */
export function list(p: Parsed, name: string): string[] {
  const v = p.options[name];
  return Array.isArray(v) ? v : [];
}

export function flag(p: Parsed, name: string): boolean {
  return p.options[name] === true;
}

/** A positive integer option, or `fallback` when not given. */
export function positiveInt(p: Parsed, name: string, fallback: number): number;
export function positiveInt(p: Parsed, name: string): number | undefined;
export function positiveInt(p: Parsed, name: string, fallback?: number): number | undefined {
  const v = str(p, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`option '--${name}' must be a positive integer, got '${v}'`);
  }
  return n;
}

/** Splits `NAME=VALUE` at the first '=' (so the value, e.g. a path, may contain '='). */
export function keyValue(option: string, text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`option '--${option}' takes NAME=VALUE, got '${text}'`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/** The positionals, failing with a UsageError unless there is exactly one per name. */
export function expectPositionals(p: Parsed, names: string[], command: string): string[] {
  if (p.positionals.length < names.length) {
    throw new UsageError(`'${command}' needs ${names.map((n) => n.toUpperCase()).join(' ')}`);
  }
  if (p.positionals.length > names.length) {
    throw new UsageError(`'${command}': unexpected argument '${p.positionals[names.length]!}'`);
  }
  return p.positionals;
}

/**
 * Dims of `--shape NAME=1,3,224,224` (empty for a scalar). With `symbols`, a dim may also be a
 * symbol such as `N`.
 */
export function parseDims(option: string, text: string, symbols = false): Array<number | string> {
  if (text.trim() === '') return [];
  return text.split(',').map((raw) => {
    const d = raw.trim();
    if (/^\d+$/.test(d) && Number.isSafeInteger(Number(d))) return Number(d);
    if (symbols && /^[A-Za-z_][A-Za-z0-9_]*$/.test(d)) return d;
    throw new UsageError(`option '--${option}': bad dimension '${raw}' in '${text}'`);
  });
}

/**
 * `--const NAME=VALUE[:DTYPE]` (repeatable): scalar inputs fixed at load time, as the
 * `constants` load option takes them. DTYPE defaults to int64 for an integer, else float32.
 */
export function constants(p: Parsed): Feeds {
  const out: Feeds = {};
  for (const text of list(p, 'const')) {
    const [name, rest] = keyValue('const', text);
    const colon = rest.lastIndexOf(':');
    const value = colon < 0 ? rest : rest.slice(0, colon);
    const dtype = (colon < 0 ? (/^-?\d+$/.test(value) ? 'int64' : 'float32') : rest.slice(colon + 1)) as DType;
    const Array = ARRAY_FOR_DTYPE[dtype];
    if (!Array || dtype === 'float16') throw new UsageError(`--const ${name}: unsupported dtype '${dtype}'`);
    const data = new Array(1);
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
      if (!/^-?\d+$/.test(value)) throw new UsageError(`--const ${name}: '${value}' is not an integer`);
      data[0] = BigInt(value);
    } else {
      const n = dtype === 'bool' ? Number(value === 'true' || value === '1') : Number(value);
      if (value === '' || Number.isNaN(n)) throw new UsageError(`--const ${name}: '${value}' is not a number`);
      data[0] = n;
    }
    if (out[name]) throw new UsageError(`--const ${name} given twice`);
    out[name] = { data, shape: [], dtype };
  }
  return out;
}
