/**
 * Reads PCM WAV files (RIFF/WAVE): 8/16/24/32-bit integer or 32/64-bit float samples, any
 * number of channels (averaged to mono), as float samples in [-1, 1].
 */
import { readFileSync } from 'node:fs';

export interface Audio {
  sampleRate: number;
  /** Mono samples in [-1, 1]. */
  samples: Float32Array;
}

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

interface Format {
  format: number;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
}

function fourcc(view: DataView, at: number): string {
  return String.fromCharCode(view.getUint8(at), view.getUint8(at + 1), view.getUint8(at + 2), view.getUint8(at + 3));
}

function parseFormat(view: DataView, at: number, size: number): Format {
  if (size < 16) throw new Error(`wav: 'fmt ' chunk too short (${size} bytes)`);
  let format = view.getUint16(at, true);
  const channels = view.getUint16(at + 2, true);
  const sampleRate = view.getUint32(at + 4, true);
  const bitsPerSample = view.getUint16(at + 14, true);
  // WAVE_FORMAT_EXTENSIBLE keeps the real format in the first 2 bytes of its SubFormat GUID.
  if (format === WAVE_FORMAT_EXTENSIBLE && size >= 26) format = view.getUint16(at + 24, true);
  return { format, channels, sampleRate, bitsPerSample };
}

/** A reader of one sample at a byte position, scaled to [-1, 1]. */
function sampleReader(view: DataView, f: Format): (at: number) => number {
  const { format, bitsPerSample: bits } = f;
  if (format === WAVE_FORMAT_PCM) {
    if (bits === 8) return (at) => (view.getUint8(at) - 128) / 128; // 8-bit PCM is unsigned
    if (bits === 16) return (at) => view.getInt16(at, true) / 32768;
    if (bits === 24) {
      return (at) => ((view.getUint8(at) | (view.getUint8(at + 1) << 8) | (view.getInt8(at + 2) << 16)) / 8388608);
    }
    if (bits === 32) return (at) => view.getInt32(at, true) / 2147483648;
  } else if (format === WAVE_FORMAT_IEEE_FLOAT) {
    if (bits === 32) return (at) => view.getFloat32(at, true);
    if (bits === 64) return (at) => view.getFloat64(at, true);
  }
  const kind = format === WAVE_FORMAT_PCM ? 'integer' : format === WAVE_FORMAT_IEEE_FLOAT ? 'float' : `format ${format}`;
  throw new Error(`wav: unsupported encoding (${kind}, ${bits} bits); supported: 8/16/24/32-bit integer PCM, 32/64-bit float`);
}

/** Decodes WAV bytes. */
export function readWav(bytes: Uint8Array): Audio {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 12 || fourcc(view, 0) !== 'RIFF' || fourcc(view, 8) !== 'WAVE') {
    throw new Error('wav: not a RIFF/WAVE file');
  }
  let fmt: Format | undefined;
  let data: { at: number; size: number } | undefined;
  // Walk the chunks (fmt, data, and others such as LIST that we skip); each is padded to even size.
  for (let at = 12; at + 8 <= bytes.length; ) {
    const id = fourcc(view, at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') fmt = parseFormat(view, body, Math.min(size, bytes.length - body));
    else if (id === 'data') {
      // Streamed files may leave the size unset (0 or 0xFFFFFFFF): take what is there.
      const available = bytes.length - body;
      data = { at: body, size: size === 0 || size > available ? available : size };
      if (fmt) break;
    }
    at = body + size + (size & 1);
  }
  if (!fmt) throw new Error("wav: no 'fmt ' chunk");
  if (!data) throw new Error("wav: no 'data' chunk");
  if (fmt.channels < 1) throw new Error('wav: zero channels');
  if (fmt.sampleRate < 1) throw new Error('wav: zero sample rate');

  const read = sampleReader(view, fmt);
  const bytesPerSample = fmt.bitsPerSample / 8;
  const frameBytes = bytesPerSample * fmt.channels;
  const frames = Math.floor(data.size / frameBytes);
  const samples = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    const frameAt = data.at + i * frameBytes;
    for (let c = 0; c < fmt.channels; c++) sum += read(frameAt + c * bytesPerSample);
    samples[i] = sum / fmt.channels;
  }
  return { sampleRate: fmt.sampleRate, samples };
}

/** Reads a WAV file. */
export function loadWav(path: string): Audio {
  try {
    return readWav(readFileSync(path));
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('wav:')) e.message = `${path}: ${e.message}`;
    throw e;
  }
}
