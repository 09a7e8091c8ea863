/**
 * Voice activity detection with Silero VAD v5 (models/silero_vad_v5.onnx), following the
 * official Python wrapper (silero-vad `utils_vad.py`: `OnnxWrapper` and `get_speech_timestamps`).
 *
 * The model takes 512-sample windows of 16 kHz audio (32 ms), each preceded by the last 64
 * samples of the window before it as context, and returns one speech probability per window.
 * Its recurrent state is carried from window to window by a TractSession.
 */
import { type InputFact, TractModel, type TractSession } from './tract-model';

export const VAD_SAMPLE_RATE = 16000;
/** Samples per window at 16 kHz. */
export const VAD_WINDOW = 512;
/** Samples of the previous window prepended to each window at 16 kHz. */
export const VAD_CONTEXT = 64;

/**
 * Resamples by linear interpolation between neighbouring samples. Good enough for VAD (which
 * looks at speech energy below 8 kHz); it does not low-pass first, so downsampling audio with
 * content above the new Nyquist frequency aliases it.
 */
export function resampleLinear(samples: Float32Array, from: number, to: number): Float32Array {
  if (from === to) return samples;
  const n = Math.floor((samples.length * to) / from);
  const out = new Float32Array(n);
  const step = from / to;
  const last = samples.length - 1;
  for (let i = 0; i < n; i++) {
    const pos = i * step;
    const j = Math.floor(pos);
    const frac = pos - j;
    const a = samples[Math.min(j, last)]!;
    const b = samples[Math.min(j + 1, last)]!;
    out[i] = a + (b - a) * frac;
  }
  return out;
}

/**
 * Input facts for Silero VAD v5 run one window at a time at 16 kHz. The file leaves the sizes
 * of `input` and the batch of `state` undeclared; fixing them lets tract plan for the one
 * shape the wrapper uses, and resolve the model's shape-dependent branches.
 */
export const SILERO_INPUT_FACTS: Readonly<Record<string, InputFact>> = Object.freeze({
  input: { dtype: 'float32', shape: [1, VAD_CONTEXT + VAD_WINDOW] },
  state: { dtype: 'float32', shape: [2, 1, 128] },
});

/**
 * Loads Silero VAD v5 for `speechProbabilities`. The sample rate is fixed at load time: the
 * model holds a 16 kHz and an 8 kHz graph behind an `If` on `sr`, and only the 16 kHz one is
 * kept.
 */
export function loadSileroVad(
  path: string | Uint8Array,
  options: { threads?: number; inlineUnderUs?: number } = {},
): Promise<TractModel> {
  return TractModel.load(path, {
    // A 32 ms frame takes about 80 µs here, under the default `inlineUnderUs`, and a hop to the
    // thread pool and back 40-150 µs more: streamed one at a time, frames run inline (0.3% of
    // the event loop's time). `inlineUnderUs: 0` keeps them on the pool.
    ...options,
    inputs: { ...SILERO_INPUT_FACTS },
    constants: { sr: { data: new BigInt64Array([BigInt(VAD_SAMPLE_RATE)]), shape: [] } },
  });
}

/** A Silero session: the state carried from window to window (zeros at first). */
export function vadSession(model: TractModel): TractSession {
  return model.session();
}

/**
 * The model inputs for each window, in order: [context | window] of VAD_CONTEXT + VAD_WINDOW
 * samples. The first context is zeros; the last partial window is padded with zeros.
 */
function* windows(audio: Float32Array): Generator<Float32Array> {
  let context = new Float32Array(VAD_CONTEXT);
  for (let start = 0; start < audio.length; start += VAD_WINDOW) {
    // A fresh array per run: the engine reads inputs in place until the run settles.
    const input = new Float32Array(VAD_CONTEXT + VAD_WINDOW);
    input.set(context, 0);
    input.set(audio.subarray(start, start + VAD_WINDOW), VAD_CONTEXT);
    context = input.subarray(input.length - VAD_CONTEXT);
    yield input;
  }
}

function probabilityOf(out: { data: ArrayLike<number | bigint> } | undefined): number {
  if (!out) throw new Error("Silero VAD: the model gave no 'output'");
  return Number(out.data[0]);
}

function to16k(samples: Float32Array, sampleRate: number): Float32Array {
  if (!(sampleRate > 0)) throw new Error(`Silero VAD: invalid sample rate ${sampleRate}`);
  return resampleLinear(samples, sampleRate, VAD_SAMPLE_RATE);
}

/**
 * Speech probability of each 32 ms window of `samples` (mono, in [-1, 1]); audio at other rates
 * than 16 kHz is first resampled by linear interpolation. One model run per window, in order,
 * each on the libuv pool.
 */
export async function speechProbabilities(
  model: TractModel,
  samples: Float32Array,
  sampleRate: number,
): Promise<Float32Array> {
  const audio = to16k(samples, sampleRate);
  const session = vadSession(model);
  const probs = new Float32Array(Math.ceil(audio.length / VAD_WINDOW));
  let i = 0;
  for (const input of windows(audio)) {
    const out = await session.run({ input: { data: input, shape: [1, input.length] } });
    probs[i++] = probabilityOf(out.output);
  }
  return probs;
}

/** Like `speechProbabilities`, but every run blocks the calling thread (no thread hops). */
export function speechProbabilitiesSync(model: TractModel, samples: Float32Array, sampleRate: number): Float32Array {
  const audio = to16k(samples, sampleRate);
  const session = vadSession(model);
  const probs = new Float32Array(Math.ceil(audio.length / VAD_WINDOW));
  let i = 0;
  for (const input of windows(audio)) {
    probs[i++] = probabilityOf(session.runSync({ input: { data: input, shape: [1, input.length] } }).output);
  }
  return probs;
}

export interface SegmentOptions {
  /** Probability at or above which a window is speech. Default 0.5. */
  threshold?: number;
  /** Probability below which a window is silence (between the two: no change). Default max(threshold - 0.15, 0.01). */
  negThreshold?: number;
  /** Speech shorter than this is dropped. Default 250. */
  minSpeechDurationMs?: number;
  /** Longer speech is split (at a silence of over 98 ms if there was one). Default Infinity. */
  maxSpeechDurationS?: number;
  /** Silence must last this long to end a segment. Default 100. */
  minSilenceDurationMs?: number;
  /** Padding added on each side of a segment. Default 30. */
  speechPadMs?: number;
  /** Sample rate the windows were taken at. Default 16000. */
  sampleRate?: number;
  /** Samples per probability. Default 512. */
  windowSamples?: number;
  /** Length of the audio in samples. Default: probs.length * windowSamples. */
  audioSamples?: number;
}

export interface SpeechSegment {
  /** Seconds. */
  start: number;
  /** Seconds. */
  end: number;
}

/**
 * Speech segments from per-window speech probabilities: silero's `get_speech_timestamps`,
 * window for window. Times are exact (sample / rate), not rounded to 0.1 s as the Python
 * version does with `return_seconds=True`.
 */
export function speechSegments(probs: ArrayLike<number>, options: SegmentOptions = {}): SpeechSegment[] {
  const threshold = options.threshold ?? 0.5;
  const negThreshold = options.negThreshold ?? Math.max(threshold - 0.15, 0.01);
  const sr = options.sampleRate ?? VAD_SAMPLE_RATE;
  const window = options.windowSamples ?? VAD_WINDOW;
  const audioSamples = options.audioSamples ?? probs.length * window;
  const minSpeech = (sr * (options.minSpeechDurationMs ?? 250)) / 1000;
  const padSamples = (sr * (options.speechPadMs ?? 30)) / 1000;
  const maxSpeech = sr * (options.maxSpeechDurationS ?? Infinity) - window - 2 * padSamples;
  const minSilence = (sr * (options.minSilenceDurationMs ?? 100)) / 1000;
  const minSilenceAtMaxSpeech = (sr * 98) / 1000;

  // All positions are in samples. A segment starts at the first window >= threshold and ends at
  // the first window < negThreshold that begins a silence of at least minSilence.
  const speeches: Array<{ start: number; end: number }> = [];
  let triggered = false;
  let start = 0;
  let tempEnd = 0; // where the current silence began (0: none), kept until it proves long enough
  let prevEnd = 0; // a past long-enough silence inside the segment, for splitting at maxSpeech
  let nextStart = 0; // where speech resumed after prevEnd

  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    const pos = window * i;
    if (p >= threshold && tempEnd) {
      // Speech again: the silence was too short to end the segment.
      tempEnd = 0;
      if (nextStart < prevEnd) nextStart = pos;
    }
    if (p >= threshold && !triggered) {
      triggered = true;
      start = pos;
      continue;
    }
    if (triggered && pos - start > maxSpeech) {
      // Too long: cut at the last long-enough silence if there was one, else right here.
      if (prevEnd) {
        speeches.push({ start, end: prevEnd });
        if (nextStart < prevEnd) triggered = false; // still in that silence
        else start = nextStart;
        prevEnd = nextStart = tempEnd = 0;
      } else {
        speeches.push({ start, end: pos });
        prevEnd = nextStart = tempEnd = 0;
        triggered = false;
        continue;
      }
    }
    if (p < negThreshold && triggered) {
      if (!tempEnd) tempEnd = pos;
      if (pos - tempEnd > minSilenceAtMaxSpeech) prevEnd = tempEnd;
      if (pos - tempEnd < minSilence) continue;
      if (tempEnd - start > minSpeech) speeches.push({ start, end: tempEnd });
      prevEnd = nextStart = tempEnd = 0;
      triggered = false;
    }
  }
  // Speech running to the end of the audio.
  if (triggered && audioSamples - start > minSpeech) speeches.push({ start, end: audioSamples });

  // Pad each segment; where two are closer than two pads, split the gap between them instead.
  for (let i = 0; i < speeches.length; i++) {
    const s = speeches[i]!;
    if (i === 0) s.start = Math.floor(Math.max(0, s.start - padSamples));
    const next = speeches[i + 1];
    if (next) {
      const gap = next.start - s.end;
      if (gap < 2 * padSamples) {
        s.end += Math.floor(gap / 2);
        next.start = Math.floor(Math.max(0, next.start - Math.floor(gap / 2)));
      } else {
        s.end = Math.floor(Math.min(audioSamples, s.end + padSamples));
        next.start = Math.floor(Math.max(0, next.start - padSamples));
      }
    } else {
      s.end = Math.floor(Math.min(audioSamples, s.end + padSamples));
    }
  }
  return speeches.map((s) => ({ start: s.start / sr, end: s.end / sr }));
}
