import { describe, expect, it } from 'vitest';
import { resampleLinear, speechSegments } from '../src/vad';

// One probability per 512-sample window at 16 kHz (32 ms). Defaults: threshold 0.5, negative
// threshold 0.35, min speech 250 ms (4000 samples), min silence 100 ms (1600 samples), pad 30 ms
// (480 samples). Expected values below are worked out by hand from silero's algorithm.
const W = 512;
const SR = 16000;
const SIL = 0.05;
const SPEECH = 0.95;

/** Probabilities from runs of [value, frames]. */
function runs(...parts: Array<[number, number]>): number[] {
  return parts.flatMap(([p, n]) => Array.from({ length: n }, () => p));
}

/** Seconds of a sample position. */
const s = (samples: number) => samples / SR;

function expectSegments(actual: Array<{ start: number; end: number }>, expected: Array<[number, number]>) {
  expect(actual.length).toBe(expected.length);
  actual.forEach((seg, i) => {
    expect(seg.start).toBeCloseTo(expected[i]![0], 9);
    expect(seg.end).toBeCloseTo(expected[i]![1], 9);
  });
}

describe('speechSegments', () => {
  it('finds nothing in silence, or in nothing', () => {
    expect(speechSegments(runs([SIL, 100]))).toEqual([]);
    expect(speechSegments([])).toEqual([]);
  });

  it('pads one segment by 30 ms on each side', () => {
    // Speech in frames 10-29: starts at 10*512, ends where the silence starts (30*512).
    const segs = speechSegments(runs([SIL, 10], [SPEECH, 20], [SIL, 20]));
    expectSegments(segs, [[s(10 * W - 480), s(30 * W + 480)]]);
  });

  it('does not pad before 0', () => {
    const segs = speechSegments(runs([SPEECH, 20], [SIL, 20]));
    expectSegments(segs, [[0, s(20 * W + 480)]]);
  });

  it('runs speech on to the end of the audio, and no further', () => {
    const probs = runs([SIL, 10], [SPEECH, 20]);
    expectSegments(speechSegments(probs), [[s(10 * W - 480), s(30 * W)]]);
    // With the true length (the last window was padded), the segment ends there.
    expectSegments(speechSegments(probs, { audioSamples: 15000 }), [[s(10 * W - 480), s(15000)]]);
  });

  it('drops blips shorter than min_speech_duration_ms (250 ms)', () => {
    // 7 frames = 3584 samples < 4000: dropped; 8 frames = 4096 > 4000: kept.
    expect(speechSegments(runs([SIL, 10], [SPEECH, 7], [SIL, 20]))).toEqual([]);
    expectSegments(speechSegments(runs([SIL, 10], [SPEECH, 8], [SIL, 20])), [[s(10 * W - 480), s(18 * W + 480)]]);
  });

  it('merges speech across gaps shorter than min_silence_duration_ms (100 ms)', () => {
    // The silence is measured from its first window: with 4 silent windows the last one is
    // 3*512 = 1536 < 1600 samples in, so the gap never ends the segment.
    for (const gap of [1, 2, 4]) {
      const segs = speechSegments(runs([SIL, 10], [SPEECH, 20], [SIL, gap], [SPEECH, 20], [SIL, 20]));
      expectSegments(segs, [[s(10 * W - 480), s((50 + gap) * W + 480)]]);
    }
  });

  it('splits at a gap of min_silence_duration_ms or more', () => {
    // 5 silent windows: the 5th is 4*512 = 2048 >= 1600 samples into the silence.
    const segs = speechSegments(runs([SIL, 10], [SPEECH, 20], [SIL, 5], [SPEECH, 20], [SIL, 20]));
    expectSegments(segs, [
      [s(10 * W - 480), s(30 * W + 480)],
      [s(35 * W - 480), s(55 * W + 480)],
    ]);
  });

  it('splits a gap narrower than two pads between its neighbours', () => {
    // With min silence 0 a single silent window ends a segment; the 512-sample gap is less than
    // 2 * 480, so each side gets half of it instead of a full pad.
    const probs = runs([SPEECH, 10], [SIL, 1], [SPEECH, 10], [SIL, 10]);
    const segs = speechSegments(probs, { minSilenceDurationMs: 0 });
    expectSegments(segs, [
      [0, s(10 * W + 256)],
      [s(11 * W - 256), s(21 * W + 480)],
    ]);
  });

  it('keeps speech going between the two thresholds (hysteresis)', () => {
    // 0.4 is below 0.5 (does not start speech) but above 0.35 (does not end it).
    const segs = speechSegments(runs([SIL, 10], [SPEECH, 10], [0.4, 20], [SIL, 20]));
    expectSegments(segs, [[s(10 * W - 480), s(40 * W + 480)]]);
    expect(speechSegments(runs([SIL, 10], [0.45, 50], [SIL, 10]))).toEqual([]);
  });

  it('counts a probability equal to the threshold as speech', () => {
    const segs = speechSegments(runs([SIL, 10], [0.5, 20], [SIL, 20]));
    expect(segs.length).toBe(1);
    expect(speechSegments(runs([SIL, 10], [0.7, 20], [SIL, 20]), { threshold: 0.8 })).toEqual([]);
  });

  it('cuts speech longer than maxSpeechDurationS', () => {
    const segs = speechSegments(runs([SPEECH, 200]), { maxSpeechDurationS: 1 });
    expect(segs.length).toBeGreaterThan(5);
    for (const seg of segs) expect(seg.end - seg.start).toBeLessThanOrEqual(1);
    expect(segs[0]!.start).toBe(0);
    expect(segs.at(-1)!.end).toBeCloseTo(s(200 * W), 9);
  });

  it('honours other window sizes and rates', () => {
    // 8 kHz silero uses 256-sample windows: 20 speech windows from window 10.
    const segs = speechSegments(runs([SIL, 10], [SPEECH, 20], [SIL, 20]), { sampleRate: 8000, windowSamples: 256 });
    expectSegments(segs, [[(10 * 256 - 240) / 8000, (30 * 256 + 240) / 8000]]);
  });
});

describe('resampleLinear', () => {
  it('keeps audio at the same rate as is', () => {
    const a = new Float32Array([1, 2, 3]);
    expect(resampleLinear(a, 16000, 16000)).toBe(a);
  });

  it('interpolates between samples when upsampling', () => {
    const out = resampleLinear(new Float32Array([0, 1, 0, -1]), 8000, 16000);
    expect(Array.from(out)).toEqual([0, 0.5, 1, 0.5, 0, -0.5, -1, -1]);
  });

  it('keeps the duration when downsampling', () => {
    const out = resampleLinear(new Float32Array(48000), 48000, 16000);
    expect(out.length).toBe(16000);
  });
});
