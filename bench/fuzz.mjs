// Mutation fuzzing of the model loader: every failure must be a typed OxinferError, and nothing
// may crash the process.
//
//   node bench/fuzz.mjs [--cases 10000] [--seed 1] [--report FILE] [--jobs 1] [--chunk 250]
//                       [--timeout-ms 5000] [--max-rss-mb 4096] [--kind onnx|safetensors|tokenizer]
//   node bench/fuzz.mjs --replay FILE        # one file, in this process: its outcome
//
// Seeds: the generated fixtures (add, cnn, dtypes, encoder), the committed Silero VAD model and
// the hostile models of scripts/gen_hostile.py (.cache/fixtures/hostile). Case i < #seeds is
// seed i unmodified; every later case is one seed (or two, spliced) under 1-3 mutations drawn
// from a PRNG seeded by (--seed, i), so any case can be rebuilt alone from its number.
//
// --kind safetensors / tokenizer: the seed is tiny-bert/'s model.safetensors or tokenizer.json
// (scripts/gen_fixtures.py); mutations are the raw ones plus header-aware ones (safetensors: the
// 8-byte header length, each tensor's dtype / shape / data_offsets, deleted and renamed entries,
// truncated data) or JSON-aware ones (tokenizer: a node replaced by a hostile number, string,
// null, other type, 100,000-deep nesting, deleted, vocab ids duplicated or huge). A case writes
// the file into a copy of tiny-bert/, loads it with CandleEmbedder and embeds four texts.
//
// --kind onnx, each case: `TractModel.load(bytes)`; if it loads, one run with zero-filled inputs built from
// `model.inputs` (symbolic dims = 1; more than 2^24 elements is 'skipped-huge'). A load or run
// taking longer than --timeout-ms is 'slow' (the worker exits, since native work cannot be
// cancelled, and the driver resumes after it). Errors must be OxinferErrors with a known code;
// anything else is 'untyped', a finding.
//
// Crashes: the driver runs the cases in child processes (`--worker --from A --to B`), which
// announce each case before starting it. A child that dies abnormally (signal, abort, nonzero
// exit, killed by the driver for passing --max-rss-mb or for a blocked event loop) points at
// its last announced case; the driver reruns that case alone to confirm it, bisects the chunk
// when it does not reproduce alone, and saves the bytes to .cache/fuzz-crashes/.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { ensureHostile } from '../scripts/hostile-fixtures.mjs';

const root = join(import.meta.dirname, '..');
const require = createRequire(import.meta.url);
const self = join(import.meta.dirname, 'fuzz.mjs');

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const flag = (name) => args.includes(`--${name}`);
const num = (name, fallback) => {
  const v = Number(opt(name, fallback));
  if (!Number.isFinite(v)) throw new Error(`--${name} must be a number`);
  return v;
};

const o = {
  kind: opt('kind', 'onnx'),
  cases: num('cases', 10_000),
  seed: num('seed', 1) >>> 0,
  jobs: num('jobs', 1),
  chunk: num('chunk', 250),
  timeoutMs: num('timeout-ms', 5_000),
  maxRssMB: num('max-rss-mb', 4_096),
  report: opt('report', undefined),
  crashDir: opt('crash-dir', join(root, '.cache', 'fuzz-crashes')),
  quiet: flag('quiet'),
  first: num('first', 0), // the driver runs cases [first, first + cases)
  injectCrash: num('inject-crash', -1), // harness self-test: this case kills its worker
};

const SLOW_EXIT = 75; // a worker's exit code after a slow case: "resume after the last case"
const HUGE = 2 ** 24; // element cap for the zero-filled run inputs

// --------------------------------------------------------------------------------------------
// PRNG (the package's mulberry32) and case derivation
// --------------------------------------------------------------------------------------------

const { prng } = require(join(root, 'dist', 'cjs', 'prng.js'));

/** A per-case seed: the case can be rebuilt from (seed, i) alone. */
function caseSeed(seed, i) {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

const pick = (r, list) => list[Math.floor(r() * list.length)];
const int = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1)); // inclusive

// --------------------------------------------------------------------------------------------
// Protobuf walking: the wire format, with no schema. A length-delimited payload that parses
// completely as fields is taken for a sub-message (names and raw data sometimes do by chance;
// mutating those is harmless). Structural mutations edit this tree and re-encode the lengths of
// the edited field's ancestors, so they get past the parser into typing and optimization.
// --------------------------------------------------------------------------------------------

function readVarint(buf, pos, end) {
  let v = 0n;
  let shift = 0n;
  for (let k = 0; k < 10; k++) {
    if (pos >= end) return null;
    const b = buf[pos++];
    v |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return { v, pos };
    shift += 7n;
  }
  return null;
}

function varint(v) {
  let n = BigInt.asUintN(64, BigInt(v));
  const out = [];
  do {
    let b = Number(n & 0x7fn);
    n >>= 7n;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Uint8Array.from(out);
}

const MAX_DEPTH = 48;

/** Parses buf[start, end) as message fields; null if it is not one. */
function parseFields(buf, start, end, parent, depth) {
  const fields = [];
  let pos = start;
  while (pos < end) {
    const key = readVarint(buf, pos, end);
    if (!key || key.v === 0n || key.v > 0xffffffffn) return null;
    const wire = Number(key.v & 7n);
    const f = { num: Number(key.v >> 3n), wire, start: pos, valStart: key.pos, end: 0, parent, children: null };
    if (f.num === 0) return null;
    if (wire === 0) {
      const v = readVarint(buf, key.pos, end);
      if (!v) return null;
      f.value = v.v;
      f.end = v.pos;
    } else if (wire === 1 || wire === 5) {
      f.end = key.pos + (wire === 1 ? 8 : 4);
      if (f.end > end) return null;
    } else if (wire === 2) {
      const len = readVarint(buf, key.pos, end);
      if (!len || len.v > BigInt(end - len.pos)) return null;
      f.lenStart = key.pos;
      f.valStart = len.pos;
      f.end = len.pos + Number(len.v);
    } else {
      return null; // groups (3, 4) are not used by ONNX; 6, 7 do not exist
    }
    fields.push(f);
    pos = f.end;
  }
  for (const f of fields) {
    if (f.wire === 2 && f.end > f.valStart && depth < MAX_DEPTH) {
      f.children = parseFields(buf, f.valStart, f.end, f, depth + 1);
    }
  }
  return fields;
}

function protoTree(buf) {
  const root = { root: true, start: 0, valStart: 0, end: buf.length, parent: null, children: null };
  root.children = parseFields(buf, 0, buf.length, root, 0) ?? [];
  const all = [];
  const messages = [root];
  const walk = (fs) => {
    for (const f of fs) {
      all.push(f);
      if (f.children) {
        messages.push(f);
        walk(f.children);
      }
    }
  };
  walk(root.children);
  return { buf, root, all, messages };
}

const concat = (parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/**
 * Re-encodes the tree with edits: `replace` maps a field to its new bytes (empty = deleted),
 * `append` maps a message to bytes added after its last field. Only the edited fields'
 * ancestors are re-encoded; everything else is copied as it is.
 */
function encodeWith(tree, replace, append) {
  const dirty = new Set();
  for (const f of [...replace.keys(), ...append.keys()]) {
    for (let p = f.parent; p; p = p.parent) dirty.add(p);
    if (append.has(f)) dirty.add(f);
  }
  const enc = (f) => {
    if (replace.has(f)) return replace.get(f);
    if (!dirty.has(f)) return tree.buf.subarray(f.start, f.end);
    const body = concat([...(f.children ?? []).map(enc), append.get(f) ?? new Uint8Array(0)]);
    if (f.root) return body;
    return concat([tree.buf.subarray(f.start, f.lenStart), varint(body.length), body]);
  };
  return enc(tree.root);
}

const fieldBytes = (tree, f) => tree.buf.subarray(f.start, f.end);

const HOSTILE_INTS = [
  0n, 1n, 2n, 3n, 7n, 8n, 16n, 127n, 128n, 255n, 256n, 65535n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n,
  2n ** 40n, 2n ** 53n + 1n, 2n ** 62n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n - 2n,
];
function hostileInt(r, current) {
  const c = current ?? 0n;
  const near = [c + 1n, c - 1n, c * 2n, c * 1000n, -c];
  const v = r() < 0.7 ? pick(r, HOSTILE_INTS) : r() < 0.5 ? pick(r, near) : BigInt(int(r, 0, 1 << 16));
  return BigInt.asUintN(64, v);
}

const HOSTILE_F32 = [NaN, Infinity, -Infinity, 0, -0, 1e38, -1e38, 1e-45, 2 ** 40];

// --------------------------------------------------------------------------------------------
// Mutations. Each takes (bytes, r, ctx) and returns { bytes, what }.
// --------------------------------------------------------------------------------------------

const raw = {
  truncate(b, r) {
    const at = int(r, 0, Math.max(0, b.length - 1));
    return { bytes: b.slice(0, at), what: `truncate@${at}` };
  },
  bitflip(b, r) {
    if (b.length === 0) return { bytes: b, what: 'bitflip(empty)' };
    const out = b.slice();
    const n = int(r, 1, 64);
    for (let k = 0; k < n; k++) out[int(r, 0, out.length - 1)] ^= 1 << int(r, 0, 7);
    return { bytes: out, what: `bitflip x${n}` };
  },
  overwrite(b, r) {
    if (b.length === 0) return { bytes: b, what: 'overwrite(empty)' };
    const out = b.slice();
    const at = int(r, 0, out.length - 1);
    const len = int(r, 1, Math.min(256, out.length - at));
    const v = pick(r, [0x00, 0xff, 0x00, 0xff, 0x7f, 0x80]);
    out.fill(v, at, at + len);
    return { bytes: out, what: `overwrite ${len}B@${at}=0x${v.toString(16)}` };
  },
  chunkDup(b, r) {
    if (b.length === 0) return { bytes: b, what: 'chunk-dup(empty)' };
    const at = int(r, 0, b.length - 1);
    const len = int(r, 1, Math.min(4096, b.length - at));
    const to = int(r, 0, b.length);
    return { bytes: concat([b.subarray(0, to), b.subarray(at, at + len), b.subarray(to)]), what: `chunk-dup ${len}B@${at}->${to}` };
  },
  chunkDelete(b, r) {
    if (b.length === 0) return { bytes: b, what: 'chunk-delete(empty)' };
    const at = int(r, 0, b.length - 1);
    const len = int(r, 1, Math.min(4096, b.length - at));
    return { bytes: concat([b.subarray(0, at), b.subarray(at + len)]), what: `chunk-delete ${len}B@${at}` };
  },
  spliceRaw(b, r, ctx) {
    const other = ctx.other(r);
    const a = int(r, 0, b.length);
    const c = int(r, 0, other.bytes.length);
    return { bytes: concat([b.subarray(0, a), other.bytes.subarray(c)]), what: `splice-raw ${a}|${other.name}@${c}` };
  },
  /** A length prefix replaced by a hostile value (the rest left as it is: lengths disagree). */
  lengthPrefix(b, r, ctx) {
    const fs = ctx.tree(b).all.filter((f) => f.wire === 2);
    if (fs.length === 0) return raw.bitflip(b, r);
    const f = pick(r, fs);
    const current = BigInt(f.end - f.valStart);
    const v = hostileInt(r, current);
    let enc = varint(v);
    const width = f.valStart - f.lenStart;
    if (r() < 0.5 && enc.length < width) {
      // same width, non-minimal encoding: keeps every later offset where it was
      const padded = new Uint8Array(width);
      padded.set(enc);
      for (let k = 0; k < width - 1; k++) padded[k] |= 0x80;
      enc = padded;
    }
    return { bytes: concat([b.subarray(0, f.lenStart), enc, b.subarray(f.valStart)]), what: `length-prefix #${f.num}@${f.lenStart} ${current}->${v}` };
  },
};

const structural = {
  fieldDelete(b, r, ctx) {
    const t = ctx.tree(b);
    if (t.all.length === 0) return raw.truncate(b, r);
    const f = pick(r, t.all);
    return { bytes: encodeWith(t, new Map([[f, new Uint8Array(0)]]), new Map()), what: `field-delete #${f.num}@${f.start}` };
  },
  fieldDup(b, r, ctx) {
    const t = ctx.tree(b);
    if (t.all.length === 0) return raw.chunkDup(b, r);
    const f = pick(r, t.all);
    const n = r() < 0.8 ? 2 : int(r, 3, 64);
    const copies = concat(Array.from({ length: n }, () => fieldBytes(t, f)));
    return { bytes: encodeWith(t, new Map([[f, copies]]), new Map()), what: `field-dup x${n} #${f.num}@${f.start}` };
  },
  varintSet(b, r, ctx) {
    const t = ctx.tree(b);
    const fs = t.all.filter((f) => f.wire === 0 || f.wire === 5);
    if (fs.length === 0) return raw.bitflip(b, r);
    const f = pick(r, fs);
    const key = t.buf.subarray(f.start, f.valStart);
    if (f.wire === 5) {
      const v = pick(r, HOSTILE_F32);
      const val = new Uint8Array(4);
      new DataView(val.buffer).setFloat32(0, v, true);
      return { bytes: encodeWith(t, new Map([[f, concat([key, val])]]), new Map()), what: `float-set #${f.num}@${f.start}=${v}` };
    }
    const v = hostileInt(r, f.value);
    return { bytes: encodeWith(t, new Map([[f, concat([key, varint(v)])]]), new Map()), what: `varint-set #${f.num}@${f.start} ${f.value}->${v}` };
  },
  bytesResize(b, r, ctx) {
    const t = ctx.tree(b);
    const fs = t.all.filter((f) => f.wire === 2 && !f.children);
    if (fs.length === 0) return raw.chunkDelete(b, r);
    const f = pick(r, fs);
    const body = t.buf.subarray(f.valStart, f.end);
    const len = pick(r, [0, 1, Math.floor(body.length / 2), Math.max(0, body.length - 1), body.length + 1, body.length * 2]);
    const nb = new Uint8Array(len);
    nb.set(body.subarray(0, Math.min(len, body.length)));
    const enc = concat([t.buf.subarray(f.start, f.lenStart), varint(len), nb]);
    return { bytes: encodeWith(t, new Map([[f, enc]]), new Map()), what: `bytes-resize #${f.num}@${f.start} ${body.length}->${len}` };
  },
  /** A field moved into another message: type confusion (a node in a tensor, say). */
  graft(b, r, ctx) {
    const t = ctx.tree(b);
    if (t.all.length === 0) return raw.chunkDup(b, r);
    const f = pick(r, t.all);
    const m = pick(r, t.messages);
    return { bytes: encodeWith(t, new Map(), new Map([[m, fieldBytes(t, f)]])), what: `graft #${f.num}@${f.start} into @${m.start}` };
  },
  /** A field of another model added to a message of this one. */
  spliceField(b, r, ctx) {
    const t = ctx.tree(b);
    const other = ctx.other(r);
    const ot = ctx.tree(other.bytes);
    if (ot.all.length === 0) return raw.spliceRaw(b, r, ctx);
    const f = pick(r, ot.all);
    const m = pick(r, t.messages);
    return {
      bytes: encodeWith(t, new Map(), new Map([[m, fieldBytes(ot, f)]])),
      what: `splice-field ${other.name}#${f.num}@${f.start} into @${m.start}`,
    };
  },
};

const MUTATORS = Object.entries({ ...raw, ...structural });

// --------------------------------------------------------------------------------------------
// Kinds: what is fuzzed. Each kind gives its seed files, its mutators and how to exercise one
// case (returning { stage, outcome, code?, message? }).
// --------------------------------------------------------------------------------------------

const FIXTURES = join(root, '.cache', 'fixtures');
const HOSTILE = join(FIXTURES, 'hostile');
/** Seeds used unmodified only: loading them takes seconds, so mutating them costs too much. */
const NO_MUTATE = new Set(['hostile/chain_20000.onnx']);


// --------------------------------------------------------------------------------------------
// The candle embedder's files: model.safetensors and tokenizer.json of tiny-bert/ (a tiny BERT
// with all-MiniLM's tokenizer, made by scripts/gen_fixtures.py). A case replaces one file of
// the folder; the others stay valid, so the mutation is what the loader meets.
// --------------------------------------------------------------------------------------------

const TINY_BERT = join(FIXTURES, 'tiny-bert');

function folderSeeds(file) {
  const f = join(TINY_BERT, file);
  if (!existsSync(f)) throw new Error(`missing seed ${f}: run \`node scripts/fixtures.mjs\``);
  return [f];
}

/** The safetensors header: { n (declared JSON size), header (parsed, or null), data }. */
function splitSafetensors(b) {
  if (b.length < 8) return null;
  const n = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  if (n > b.length - 8) return null;
  try {
    return { header: JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n))), data: b.subarray(8 + n) };
  } catch {
    return null;
  }
}

function joinSafetensors(header, data) {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(h.length), true);
  return concat([len, h, data]);
}

const HOSTILE_JSON_NUMBERS = [-1, 0, 1, 2 ** 31, 2 ** 32 + 1, 2 ** 53, 2 ** 64, 1e308, -1e308, 0.5];
const hostileDim = (r) => pick(r, [0, 1, 2, 3, 7, 384, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53, -1, 1.5]);

const safetensorsMutators = {
  headerLength(b, r) {
    const out = b.slice();
    const v = hostileInt(r, b.length >= 8 ? new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true) : 0n);
    if (out.length >= 8) new DataView(out.buffer).setBigUint64(0, v, true);
    return { bytes: out, what: `header-length ${v}` };
  },
  tensorEntry(b, r) {
    const st = splitSafetensors(b);
    if (!st) return raw.bitflip(b, r);
    const names = Object.keys(st.header).filter((k) => k !== '__metadata__');
    if (names.length === 0) return { bytes: b, what: 'tensor-entry(none)' };
    const name = pick(r, names);
    const t = { ...st.header[name] };
    const field = pick(r, ['dtype', 'shape', 'offsets', 'delete', 'rename', 'junk']);
    const header = { ...st.header };
    switch (field) {
      case 'dtype':
        t.dtype = pick(r, ['F16', 'BF16', 'F64', 'I64', 'I32', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2', 'F4', 'X', '', 7]);
        break;
      case 'shape': {
        const shape = [...(t.shape ?? [])];
        const k = pick(r, ['set', 'push', 'pop', 'empty', 'type']);
        if (k === 'set' && shape.length) shape[int(r, 0, shape.length - 1)] = hostileDim(r);
        if (k === 'push') shape.push(hostileDim(r));
        if (k === 'pop') shape.pop();
        t.shape = k === 'empty' ? [] : k === 'type' ? pick(r, ['384', null, {}, [[1]]]) : shape;
        break;
      }
      case 'offsets': {
        const [a, z] = t.data_offsets ?? [0, 0];
        t.data_offsets = pick(r, [[z, a], [a, z + 4], [a, st.data.length + 4], [a - 4, z], [0, 2 ** 53], [a, a], [a], [a, z, 0], 'x'].map((v) => v));
        break;
      }
      case 'delete':
        delete header[name];
        return { bytes: joinSafetensors(header, st.data), what: `delete ${name}` };
      case 'rename':
        delete header[name];
        header[`${name}.x`] = t;
        return { bytes: joinSafetensors(header, st.data), what: `rename ${name}` };
      case 'junk':
        header[pick(r, ['__metadata__', 'junk', ''])] = pick(r, [{ a: 1 }, 5, 'x', null, [1, 2]]);
        return { bytes: joinSafetensors(header, st.data), what: 'junk entry' };
    }
    header[name] = t;
    return { bytes: joinSafetensors(header, st.data), what: `${field} of ${name}` };
  },
  dataTruncate(b, r) {
    const st = splitSafetensors(b);
    if (!st) return raw.truncate(b, r);
    const keep = int(r, 0, st.data.length - 1);
    return { bytes: b.subarray(0, b.length - st.data.length + keep), what: `data-truncate to ${keep}` };
  },
};

/** Paths to a sample of the JSON's nodes (the big vocab is sampled, not walked whole). */
function jsonPaths(doc, r, limit = 400) {
  const paths = [];
  const walk = (v, path, depth) => {
    if (paths.length >= limit * 4 || depth > 40) return;
    paths.push(path);
    if (v && typeof v === 'object') {
      const keys = Object.keys(v);
      const sample = keys.length > 64 ? Array.from({ length: 16 }, () => pick(r, keys)) : keys;
      for (const k of sample) walk(v[k], [...path, k], depth + 1);
    }
  };
  walk(doc, [], 0);
  return paths;
}

function deepNest(n) {
  let v = 1;
  for (let i = 0; i < n; i++) v = [v];
  return v;
}

const jsonMutators = {
  jsonValue(b, r) {
    let doc;
    try {
      doc = JSON.parse(new TextDecoder().decode(b));
    } catch {
      return raw.bitflip(b, r);
    }
    const paths = jsonPaths(doc, r).filter((p) => p.length > 0);
    if (paths.length === 0) return { bytes: b, what: 'json(empty)' };
    const path = pick(r, paths);
    let parent = doc;
    for (const k of path.slice(0, -1)) parent = parent[k];
    const key = path[path.length - 1];
    const op = pick(r, ['number', 'string', 'null', 'type', 'delete', 'nest', 'dup-vocab']);
    switch (op) {
      case 'number':
        parent[key] = pick(r, HOSTILE_JSON_NUMBERS);
        break;
      case 'string':
        parent[key] = pick(r, ['', 'x'.repeat(int(r, 1, 100000)), '\u0000', '\ud800', '##', '[UNK]']);
        break;
      case 'null':
        parent[key] = null;
        break;
      case 'type':
        parent[key] = pick(r, [[], {}, true, [null], { type: 'Nope' }]);
        break;
      case 'delete':
        if (Array.isArray(parent)) parent.splice(Number(key), 1);
        else delete parent[key];
        break;
      case 'nest':
        parent[key] = deepNest(int(r, 100, 100000));
        break;
      case 'dup-vocab': {
        const vocab = doc?.model?.vocab;
        if (vocab && typeof vocab === 'object') {
          const keys = Object.keys(vocab);
          vocab[pick(r, keys)] = pick(r, [vocab[pick(r, keys)], 2 ** 31, 2 ** 32 + 5, -3, 1e9]);
        }
        break;
      }
    }
    let text;
    try {
      text = JSON.stringify(doc);
    } catch {
      return { bytes: b, what: `json ${op} (unserializable)` };
    }
    return { bytes: new TextEncoder().encode(text), what: `json ${op} @${path.slice(0, 4).join('.')}` };
  },
};

let folder; // a worker's case folder: the seed folder's other files, and the mutated one
function caseFolder() {
  if (!folder) {
    folder = mkdtempSync(join(tmpdir(), 'oxinfer-fuzz-folder-'));
    for (const f of ['config.json', 'tokenizer.json', 'model.safetensors']) copyFileSync(join(TINY_BERT, f), join(folder, f));
    process.on('exit', () => rmSync(folder, { recursive: true, force: true }));
  }
  return folder;
}

const TEXTS = ['hello world', '', 'Ünïcödé 😀 日本語', 'word '.repeat(300)];

/** Loads the folder with `file` replaced by the case's bytes, then embeds a few texts. */
function exerciseFolder(file) {
  return async (bytes, timeoutMs, onStage = () => {}) => {
    const { CandleEmbedder } = loadApi();
    const dir = caseFolder();
    writeFileSync(join(dir, file), bytes);
    const loaded = await timed(() => CandleEmbedder.load(dir, { threads: 1, cache: false }), timeoutMs);
    // Restore the valid file for the next case only after the load has read it.
    copyFileSync(join(TINY_BERT, file), join(dir, file));
    const loadFailed = stageFailure('load', loaded);
    if (loadFailed) return loadFailed;
    const emb = loaded.value;
    onStage('run');
    const ran = await timed(() => emb.embed(TEXTS), timeoutMs);
    if (ran.slow) return stageFailure('run', ran, { loadMs: loaded.ms });
    await emb.dispose();
    return stageFailure('run', ran, { loadMs: loaded.ms }) ?? { stage: 'run', outcome: 'ran', ms: ran.ms, loadMs: loaded.ms };
  };
}

const KINDS = {
  onnx: {
    prepare: () => ensureHostile(root),
    seedFiles() {
      const files = ['add.onnx', 'cnn.onnx', 'dtypes.onnx', 'encoder.onnx'].map((f) => join(FIXTURES, f));
      files.push(join(root, 'models', 'silero_vad_v5.onnx'));
      if (!existsSync(HOSTILE)) {
        throw new Error(`missing ${relative(root, HOSTILE)}: run \`.venv/bin/python scripts/gen_hostile.py --out ${relative(root, HOSTILE)}\``);
      }
      for (const f of readdirSync(HOSTILE).sort()) if (f.endsWith('.onnx')) files.push(join(HOSTILE, f));
      for (const f of files) if (!existsSync(f)) throw new Error(`missing seed ${f}: run \`node scripts/fixtures.mjs\``);
      return files;
    },
    mutators: MUTATORS,
    exercise: exerciseOnnx,
  },
  safetensors: {
    seedFiles: () => folderSeeds('model.safetensors'),
    mutators: [...Object.entries(raw), ...Object.entries(safetensorsMutators)],
    exercise: exerciseFolder('model.safetensors'),
  },
  tokenizer: {
    seedFiles: () => folderSeeds('tokenizer.json'),
    mutators: [...Object.entries(raw), ...Object.entries(jsonMutators)],
    exercise: exerciseFolder('tokenizer.json'),
  },
};

let api; // the package, loaded in workers and --replay only
const loadApi = () => (api ??= require(join(root, 'dist', 'cjs', 'index.js')));

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, int64: BigInt64Array, uint64: BigUint64Array,
  int32: Int32Array, uint32: Uint32Array, int16: Int16Array, uint16: Uint16Array, int8: Int8Array, uint8: Uint8Array,
  bool: Uint8Array,
};

/** Zero-filled feeds for model.inputs: symbols = 1; null if some input is too large. */
function zeroFeeds(inputs) {
  const feeds = {};
  for (const i of inputs) {
    const shape = i.shape.map((d) => (typeof d === 'number' ? d : 1));
    let n = 1;
    for (const d of shape) n *= d;
    if (!(n <= HUGE)) return null; // also NaN
    const Ctor = ARRAYS[i.dtype] ?? Float32Array;
    feeds[i.name] = { data: new Ctor(n), shape, dtype: i.dtype };
  }
  return feeds;
}

const timeout = (ms) => {
  let timer;
  const p = new Promise((resolve) => {
    timer = setTimeout(() => resolve(SLOW), ms);
  });
  return { p, clear: () => clearTimeout(timer) };
};
const SLOW = Symbol('slow');

function classify(e) {
  const { OxinferError, ERROR_CODES } = loadApi();
  if (e instanceof OxinferError && ERROR_CODES.includes(e.code)) {
    const cause = e.cause;
    return {
      outcome: 'error',
      code: e.code,
      message: String(e.message).slice(0, 500),
      panic: /internal engine error/.test(e.message),
      // Engine errors that did not come with the native layer's [ERR_…] prefix (napi's own).
      unprefixed: e.code === 'ERR_ENGINE' && cause !== undefined && !/^\[ERR_/.test(String(cause?.message ?? cause)),
    };
  }
  return {
    outcome: 'untyped',
    message: String(e?.stack ?? e).slice(0, 1500),
    type: e?.constructor?.name ?? typeof e,
  };
}

async function guarded(promise, ms) {
  const t = timeout(ms);
  try {
    const v = await Promise.race([promise, t.p]);
    return v === SLOW ? { slow: true } : { value: v };
  } catch (e) {
    return { error: e };
  } finally {
    t.clear();
  }
}

/** Starts one stage under the case timeout: { ms, slow?, error?, value? }; a synchronous throw
 * counts as an error. */
async function timed(start, timeoutMs) {
  const t0 = performance.now();
  let r;
  try {
    r = await guarded(start(), timeoutMs);
  } catch (e) {
    r = { error: e };
  }
  return { ...r, ms: performance.now() - t0 };
}

/** A case's result from a timed stage that failed or took too long; null when it succeeded. */
function stageFailure(stage, r, extra = {}) {
  if (r.slow) return { stage, outcome: 'slow', ms: r.ms, ...extra };
  if (r.error) return { stage, ms: r.ms, ...extra, ...classify(r.error) };
  return null;
}

async function exerciseOnnx(bytes, timeoutMs, onStage = () => {}) {
  const { TractModel } = loadApi();
  const loaded = await timed(() => TractModel.load(bytes, { threads: 1 }), timeoutMs);
  const loadFailed = stageFailure('load', loaded);
  if (loadFailed) return loadFailed;
  const model = loaded.value;
  const loadMs = loaded.ms;
  let res;
  const feeds = zeroFeeds(model.inputs);
  if (!feeds) {
    res = { stage: 'run', outcome: 'skipped-huge', ms: loadMs };
  } else {
    onStage('run');
    const ran = await timed(() => model.run(feeds), timeoutMs);
    if (ran.slow) return stageFailure('run', ran, { loadMs });
    res = stageFailure('run', ran, { loadMs }) ?? { stage: 'run', outcome: 'ran', ms: ran.ms, loadMs };
  }
  await model.dispose();
  return res;
}

// --------------------------------------------------------------------------------------------
// The corpus: case i -> bytes (deterministic)
// --------------------------------------------------------------------------------------------

function corpus(kind, seed) {
  const k = KINDS[kind];
  const files = k.seedFiles();
  const seeds = files.map((f) => {
    const name = relative(FIXTURES, f).startsWith('..') ? relative(root, f) : relative(FIXTURES, f);
    return { name, file: f, bytes: new Uint8Array(readFileSync(f)) };
  });
  const mutable = seeds.filter((s) => !NO_MUTATE.has(s.name));
  const fixtures = mutable.filter((s) => !s.name.startsWith('hostile/'));
  const hostile = mutable.filter((s) => s.name.startsWith('hostile/'));
  const trees = new Map(); // bytes -> parsed tree (seeds only: mutated bytes are parsed afresh)
  const tree = (b) => {
    let t = trees.get(b);
    if (!t) {
      t = protoTree(b);
      if (seeds.some((s) => s.bytes === b)) trees.set(b, t);
    }
    return t;
  };
  // Half the cases start from the fixtures (real graphs, real ops), half from the hostile files.
  const choose = (r) => (r() < 0.5 || hostile.length === 0 ? pick(r, fixtures) : pick(r, hostile));
  const ctx = { tree, other: (r) => choose(r) };

  /** Case i: { i, seed (name), what: [mutations], bytes }. */
  function make(i) {
    if (i < seeds.length) return { i, seed: seeds[i].name, what: ['unmodified'], bytes: seeds[i].bytes };
    const r = prng(caseSeed(seed, i));
    const s = choose(r);
    let bytes = s.bytes;
    const what = [];
    const n = r() < 0.7 ? 1 : int(r, 2, 3);
    for (let k = 0; k < n; k++) {
      const [name, m] = pick(r, KINDS[kind].mutators);
      const out = m(bytes, r, ctx);
      bytes = out.bytes;
      what.push(out.what ?? name);
    }
    return { i, seed: s.name, what, bytes };
  }
  return { seeds, make };
}

// --------------------------------------------------------------------------------------------
// Worker: runs cases [from, to) and reports each on fd 3 (JSON lines, written synchronously)
// --------------------------------------------------------------------------------------------

async function worker() {
  const from = num('from', 0);
  const to = num('to', 0);
  const { make } = corpus(o.kind, o.seed);
  const send = (m) => writeSync(3, `${JSON.stringify(m)}\n`);
  for (let i = from; i < to; i++) {
    const c = make(i);
    send({ t: 'begin', i });
    if (i === o.injectCrash) process.kill(process.pid, 'SIGSEGV'); // tests the crash path
    const res = await KINDS[o.kind].exercise(c.bytes, o.timeoutMs, (stage) => send({ t: 'stage', i, stage }));
    send({ t: 'end', i, rssKB: process.resourceUsage().maxRSS, ...res });
    if (res.outcome === 'slow') {
      process.exit(SLOW_EXIT); // the native work goes on and cannot be cancelled: start afresh
    }
  }
  send({ t: 'done', rssKB: process.resourceUsage().maxRSS });
  process.exit(0);
}

// --------------------------------------------------------------------------------------------
// Driver
// --------------------------------------------------------------------------------------------

function vmRssKB(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)/.exec(s);
    const hwm = /VmHWM:\s+(\d+)/.exec(s);
    return { rss: rss ? Number(rss[1]) : 0, hwm: hwm ? Number(hwm[1]) : 0 };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

/**
 * Runs cases [from, to) in one child. Resolves with { ends (results by case), last (begun, not
 * ended), exit: 'ok' | 'slow' | 'crash', code, signal, killed?, stderr, maxRssKB }.
 */
function runChild(from, to) {
  return new Promise((resolve) => {
    const argv = [self, '--worker', '--from', String(from), '--to', String(to), '--seed', String(o.seed), '--kind', o.kind,
      '--timeout-ms', String(o.timeoutMs), '--inject-crash', String(o.injectCrash)];
    const child = spawn(process.execPath, argv, { cwd: root, stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    const ends = [];
    let last = null;
    let lastStage = null;
    let maxRssKB = 0;
    let killed = null;
    let finished = false;
    let slowKilled = false;
    let stderr = '';
    let lastMessage = Date.now();
    child.stderr.on('data', (d) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    createInterface({ input: child.stdio[3] }).on('line', (line) => {
      lastMessage = Date.now();
      const m = JSON.parse(line);
      if (m.rssKB) maxRssKB = Math.max(maxRssKB, m.rssKB);
      if (m.t === 'done') finished = true;
      else if (m.t === 'begin') {
        last = m.i;
        lastStage = 'load';
      } else if (m.t === 'stage') lastStage = m.stage;
      else if (m.t === 'end') {
        ends.push(m);
        last = null;
        if (m.outcome === 'slow') {
          // Its native work goes on (and may keep allocating) and would hold up process.exit:
          // kill the child now; the driver resumes after this case.
          slowKilled = true;
          child.kill('SIGKILL');
        }
      }
    });
    // Memory cap and blocked-event-loop watchdog (a slow case is caught in the child itself;
    // this catches a child whose event loop is blocked and so cannot notice its own timer).
    const watch = setInterval(() => {
      const { rss, hwm } = vmRssKB(child.pid);
      maxRssKB = Math.max(maxRssKB, hwm);
      if (slowKilled) return;
      if (rss > o.maxRssMB * 1024 && !killed) {
        killed = `memory: RSS ${Math.round(rss / 1024)} MB > --max-rss-mb ${o.maxRssMB}`;
        child.kill('SIGKILL');
      } else if (Date.now() - lastMessage > o.timeoutMs * 2 + 10_000 && !killed) {
        killed = `blocked: no progress for ${Math.round((Date.now() - lastMessage) / 1000)} s`;
        child.kill('SIGKILL');
      }
    }, 100);
    child.on('close', (code, signal) => {
      clearInterval(watch);
      const exit = slowKilled ? 'slow' : killed ? 'crash' : code === 0 && signal === null && finished ? 'ok' : code === SLOW_EXIT ? 'slow' : 'crash';
      resolve({ ends, last, lastStage, exit, code, signal, killed, stderr, maxRssKB });
    });
  });
}

async function driver() {
  if (!KINDS[o.kind]) {
    throw new Error(`unknown --kind ${o.kind} (known: ${Object.keys(KINDS).join(', ')})`);
  }
  const started = Date.now();
  KINDS[o.kind].prepare?.();
  const { seeds, make } = corpus(o.kind, o.seed);
  const log = (s) => o.quiet || process.stderr.write(`${s}\n`);
  log(`fuzz: ${o.cases} ${o.kind} cases from ${o.first}, seed ${o.seed}, ${seeds.length} seed models, ${o.jobs} job(s), chunks of ${o.chunk}`);

  const results = new Array(o.first + o.cases);
  const crashes = [];
  let maxRssKB = 0;
  let done = 0;
  let nextLog = Date.now() + 10_000;

  const record = (m) => {
    if (!results[m.i]) done++;
    results[m.i] = m;
    if (m.outcome === 'slow') log(`  slow: case ${m.i} (${describe(m.i)}) at ${m.stage}, > ${o.timeoutMs} ms`);
    if (m.outcome === 'untyped') log(`  UNTYPED: case ${m.i} (${describe(m.i)}): ${m.message.split('\n')[0]}`);
    if (Date.now() > nextLog) {
      nextLog = Date.now() + 10_000;
      log(`  ${done}/${o.cases} cases, ${((Date.now() - started) / 1000).toFixed(0)} s, ${crashes.length} crashes`);
    }
  };
  const describe = (i) => {
    const c = make(i);
    return `${c.seed}: ${c.what.join(', ')}`;
  };
  const crashes_ = (r) => r.exit === 'crash';

  /** Finds the crashing case of a chunk run that died, confirms it and saves its bytes. */
  async function investigate(from, r) {
    const suspect = r.last ?? (r.ends.length ? r.ends[r.ends.length - 1].i + 1 : from);
    const how = r.killed ?? (r.signal ? `signal ${r.signal}` : `exit code ${r.code}`);
    log(`  CRASH in cases ${from}..: ${how}; suspect case ${suspect} (${describe(suspect)})`);
    const alone = await runChild(suspect, suspect + 1);
    if (alone.exit === 'crash' && alone.last === null && alone.ends.length === 0) {
      throw new Error(`the fuzz worker dies before its first case (${how}):\n${alone.stderr}`);
    }
    let reproducesAlone = crashes_(alone);
    let minimalFrom = suspect;
    if (!reproducesAlone) {
      // State left by earlier cases: find the latest start that still crashes (bisection).
      let lo = from;
      let hi = suspect; // [hi, suspect] does not crash alone when hi = suspect
      const full = await runChild(from, suspect + 1);
      if (crashes_(full)) {
        while (hi - lo > 1) {
          const mid = Math.floor((lo + hi) / 2);
          if (crashes_(await runChild(mid, suspect + 1))) lo = mid;
          else hi = mid;
        }
        minimalFrom = lo;
      } else {
        minimalFrom = null; // flaky: does not reproduce
      }
    }
    const c = make(suspect);
    mkdirSync(o.crashDir, { recursive: true });
    const ext = { onnx: 'onnx', safetensors: 'safetensors', tokenizer: 'json' }[o.kind];
    const file = join(o.crashDir, `${o.kind}-seed${o.seed}-case${suspect}.${ext}`);
    writeFileSync(file, c.bytes);
    const crash = {
      case: suspect,
      seedModel: c.seed,
      mutations: c.what,
      how,
      reproducesAlone,
      reproducesFrom: minimalFrom,
      file: relative(root, file),
      sha256: createHash('sha256').update(c.bytes).digest('hex'),
      stage: r.lastStage ?? 'load',
      stderrTail: (alone.stderr || r.stderr).slice(-1500),
    };
    writeFileSync(`${file}.json`, `${JSON.stringify(crash, null, 2)}\n`);
    crashes.push(crash);
    results[suspect] = { i: suspect, outcome: 'crash', stage: r.lastStage ?? 'load' };
    done++;
    return suspect;
  }

  // A queue of chunks, `jobs` children at a time; a chunk that stops early (slow, crash) goes
  // back on the queue from the case after the one it stopped at.
  const queue = [];
  const end = o.first + o.cases;
  for (let a = o.first; a < end; a += o.chunk) queue.push([a, Math.min(end, a + o.chunk)]);
  async function lane() {
    while (queue.length) {
      const [from, to] = queue.shift();
      const r = await runChild(from, to);
      maxRssKB = Math.max(maxRssKB, r.maxRssKB);
      for (const m of r.ends) record(m);
      let resume = null;
      if (r.exit === 'slow') {
        resume = r.ends[r.ends.length - 1].i + 1;
      } else if (r.exit === 'crash') {
        // (including a worker that exits 0 before its last case)
        resume = (await investigate(from, r)) + 1;
      }
      if (resume !== null && resume < to) queue.unshift([resume, to]);
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, o.jobs) }, lane));

  // ---- the report
  const outcomes = { loaded: 0, ran: 0, 'load-error': {}, 'run-error': {}, slow: 0, 'skipped-huge': 0, crash: 0, untyped: 0 };
  const typedErrors = {};
  const byMutation = {};
  const untyped = [];
  const slow = [];
  const panics = new Map();
  const unprefixed = [];
  let loadMsTotal = 0;
  for (const m of results) {
    if (!m) continue;
    const loaded = m.stage === 'run';
    if (loaded) outcomes.loaded++;
    if (m.outcome === 'ran') outcomes.ran++;
    else if (m.outcome === 'error') {
      const bucket = outcomes[`${m.stage}-error`];
      bucket[m.code] = (bucket[m.code] ?? 0) + 1;
      typedErrors[m.code] = (typedErrors[m.code] ?? 0) + 1;
      if (m.panic) {
        const key = m.message.replace(/\d+/g, 'N').slice(0, 160);
        const p = panics.get(key) ?? { count: 0, stage: m.stage, example: m.message, case: m.i };
        p.count++;
        panics.set(key, p);
      }
      if (m.unprefixed && unprefixed.length < 20) unprefixed.push({ case: m.i, message: m.message });
    } else if (m.outcome === 'slow') {
      outcomes.slow++;
      slow.push({ case: m.i, stage: m.stage, what: describe(m.i) });
    } else if (m.outcome === 'skipped-huge') outcomes['skipped-huge']++;
    else if (m.outcome === 'crash') outcomes.crash++;
    else if (m.outcome === 'untyped') {
      outcomes.untyped++;
      untyped.push({ case: m.i, stage: m.stage, what: describe(m.i), type: m.type, message: m.message });
    }
    loadMsTotal += m.loadMs ?? (m.stage === 'load' ? m.ms ?? 0 : 0);
    if (m.i >= seeds.length) {
      for (const w of make(m.i).what) {
        const name = w.split(/[ @(]/)[0];
        const b = (byMutation[name] ??= { cases: 0, loaded: 0, ran: 0 });
        b.cases++;
        if (loaded) b.loaded++;
        if (m.outcome === 'ran') b.ran++;
      }
    }
  }
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const durationS = (Date.now() - started) / 1000;
  const report = {
    kind: o.kind,
    date: new Date().toISOString(),
    cases: results.filter(Boolean).length,
    seed: o.seed,
    options: { first: o.first, jobs: o.jobs, chunk: o.chunk, timeoutMs: o.timeoutMs, maxRssMB: o.maxRssMB, hugeElements: HUGE },
    durationS: Math.round(durationS * 10) / 10,
    casesPerSecond: Math.round((results.filter(Boolean).length / durationS) * 10) / 10,
    meanLoadMs: Math.round((loadMsTotal / Math.max(1, results.filter(Boolean).length)) * 10) / 10,
    outcomes,
    typedErrors,
    crashes: crashes.length,
    untypedErrors: untyped.length,
    crashList: crashes,
    untypedList: untyped.slice(0, 50),
    slowList: slow,
    panicsCaught: {
      count: [...panics.values()].reduce((n, p) => n + p.count, 0),
      distinct: [...panics.values()].sort((a, b) => b.count - a.count).slice(0, 30),
    },
    unprefixedEngineErrors: unprefixed,
    byMutation,
    maxChildRssMB: Math.round(maxRssKB / 1024),
    seedModels: seeds.map((s) => ({ name: s.name, bytes: s.bytes.length, mutated: !NO_MUTATE.has(s.name) })),
    versions: { node: process.version, oxinfer: pkg.version, platform: `${process.platform}-${process.arch}` },
  };
  if (o.report) {
    mkdirSync(dirname(o.report), { recursive: true });
    writeFileSync(o.report, `${JSON.stringify(report, null, 2)}\n`);
  }
  const summary = { ...report };
  delete summary.seedModels;
  delete summary.byMutation;
  summary.panicsCaught = { count: report.panicsCaught.count, distinct: report.panicsCaught.distinct.length };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  return crashes.length === 0 && untyped.length === 0 ? 0 : 1;
}

/** --replay FILE: one file, in this process (so a crash shows its native backtrace). */
async function replay(file) {
  const bytes = new Uint8Array(readFileSync(file));
  const res = await KINDS[o.kind].exercise(bytes, o.timeoutMs);
  process.stdout.write(`${JSON.stringify({ file, bytes: bytes.length, size: statSync(file).size, ...res }, null, 2)}\n`);
  return res.outcome === 'untyped' ? 1 : 0;
}

if (flag('worker')) {
  await worker();
} else if (opt('replay', undefined)) {
  process.exitCode = await replay(opt('replay'));
} else if (opt('dump', undefined) !== undefined) {
  // --dump I: writes case I's bytes to stdout (to reproduce one case by hand)
  const { make } = corpus(o.kind, o.seed);
  const c = make(Number(opt('dump')));
  process.stderr.write(`case ${c.i}: ${c.seed}: ${c.what.join(', ')} (${c.bytes.length} bytes)\n`);
  process.stdout.write(c.bytes);
} else {
  process.exitCode = await driver();
}
