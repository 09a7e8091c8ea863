import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadWav, readWav } from '../src/wav';

const SPEECH = join(__dirname, '..', 'assets', 'speech.wav');

function rms(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s / a.length);
}

interface Chunk {
  id: string;
  body: Uint8Array;
}

function chunk(id: string, body: Uint8Array): Chunk {
  return { id, body };
}

/** A RIFF/WAVE file of the given chunks (each padded to even size). */
function riff(chunks: Chunk[]): Uint8Array {
  const size = 4 + chunks.reduce((n, c) => n + 8 + c.body.length + (c.body.length & 1), 0);
  const out = new Uint8Array(8 + size);
  const view = new DataView(out.buffer);
  const ascii = (at: number, s: string) => [...s].forEach((ch, i) => (out[at + i] = ch.charCodeAt(0)));
  ascii(0, 'RIFF');
  view.setUint32(4, size, true);
  ascii(8, 'WAVE');
  let at = 12;
  for (const c of chunks) {
    ascii(at, c.id);
    view.setUint32(at + 4, c.body.length, true);
    out.set(c.body, at + 8);
    at += 8 + c.body.length + (c.body.length & 1);
  }
  return out;
}

function fmt(format: number, channels: number, rate: number, bits: number, extensible = false): Chunk {
  const body = new Uint8Array(extensible ? 40 : 16);
  const v = new DataView(body.buffer);
  v.setUint16(0, extensible ? 0xfffe : format, true);
  v.setUint16(2, channels, true);
  v.setUint32(4, rate, true);
  v.setUint32(8, (rate * channels * bits) / 8, true);
  v.setUint16(12, (channels * bits) / 8, true);
  v.setUint16(14, bits, true);
  if (extensible) {
    v.setUint16(16, 22, true);
    v.setUint16(24, format, true); // SubFormat GUID starts with the format code
  }
  return chunk('fmt ', body);
}

function int16(values: number[]): Uint8Array {
  return new Uint8Array(new Int16Array(values).buffer);
}

describe('readWav', () => {
  it('reads assets/speech.wav: 16 kHz mono, 285876 samples', () => {
    const { sampleRate, samples } = loadWav(SPEECH);
    expect(sampleRate).toBe(16000);
    expect(samples.length).toBe(285876);
    let peak = 0;
    for (const v of samples) peak = Math.max(peak, Math.abs(v));
    // Sentences are peak-normalised to -3 dBFS (0.708), plus faint noise.
    expect(peak).toBeGreaterThan(0.65);
    expect(peak).toBeLessThan(0.75);
    // The lead-in (0-0.5 s) is noise at about -50 dBFS; the first sentence is far louder.
    const leadIn = rms(samples.subarray(0, 8000));
    expect(leadIn).toBeGreaterThan(0.001);
    expect(leadIn).toBeLessThan(0.01);
    expect(rms(samples.subarray(8000, 56502))).toBeGreaterThan(20 * leadIn);
  });

  it('scales 16-bit samples to [-1, 1)', () => {
    const wav = riff([fmt(1, 1, 8000, 16), chunk('data', int16([0, 16384, -32768, 32767]))]);
    const { sampleRate, samples } = readWav(wav);
    expect(sampleRate).toBe(8000);
    expect(Array.from(samples)).toEqual([0, 0.5, -1, 32767 / 32768]);
  });

  it('mixes channels down to mono', () => {
    const wav = riff([fmt(1, 2, 44100, 16), chunk('data', int16([16384, 0, -16384, -16384, 8192, 24576]))]);
    const { samples } = readWav(wav);
    expect(Array.from(samples)).toEqual([0.25, -0.5, 0.5]);
  });

  it('reads 32-bit float samples, also as WAVE_FORMAT_EXTENSIBLE', () => {
    const data = chunk('data', new Uint8Array(new Float32Array([0.25, -0.75, 1]).buffer));
    for (const extensible of [false, true]) {
      const { samples } = readWav(riff([fmt(3, 1, 16000, 32, extensible), data]));
      expect(Array.from(samples)).toEqual([0.25, -0.75, 1]);
    }
  });

  it('skips LIST and other chunks, including odd-sized ones', () => {
    const list = chunk('LIST', new TextEncoder().encode('INFOISFT\x05\x00\x00\x00odd!!'));
    expect(list.body.length % 2).toBe(1);
    const wav = riff([chunk('JUNK', new Uint8Array(3)), fmt(1, 1, 16000, 16), list, chunk('data', int16([-16384]))]);
    expect(Array.from(readWav(wav).samples)).toEqual([-0.5]);
  });

  it('takes the bytes present when the data size is unset (streamed files)', () => {
    const wav = riff([fmt(1, 1, 16000, 16), chunk('data', int16([16384, 16384]))]);
    new DataView(wav.buffer).setUint32(wav.length - 8, 0xffffffff, true);
    expect(readWav(wav).samples.length).toBe(2);
  });

  it('rejects what it cannot read', () => {
    expect(() => readWav(new TextEncoder().encode('not a wav file at all'))).toThrow(/RIFF/);
    expect(() => readWav(riff([chunk('data', int16([1]))]))).toThrow(/fmt/);
    expect(() => readWav(riff([fmt(1, 1, 16000, 16)]))).toThrow(/data/);
    expect(() => readWav(riff([fmt(2, 1, 16000, 4), chunk('data', int16([1]))]))).toThrow(/unsupported/);
  });

  it('matches the bytes of speech.wav sample for sample', () => {
    // speech.wav is a plain 44-byte-header 16-bit mono file: sample i is int16 at 44 + 2i.
    const bytes = readFileSync(SPEECH);
    const { samples } = readWav(bytes);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (const i of [0, 1, 8000, 30000, 285875]) {
      expect(samples[i]).toBe(view.getInt16(44 + 2 * i, true) / 32768);
    }
  });
});
