/** `oxinfer demo`: voice-activity detection with the bundled Silero VAD on the bundled recording. */
import { join, relative } from 'node:path';
import { VAD_SAMPLE_RATE, VAD_WINDOW, loadSileroVad, speechProbabilities, speechSegments } from '../vad';
import { loadWav } from '../wav';
import { type Spec, expectPositionals, flag, parseArgs, positiveInt, str } from './args';
import { packageRoot } from './package-root';

export const summary = 'find speech in a recording with the bundled Silero VAD (the default of npm start)';

export const usage = `Usage: oxinfer demo [--wav FILE] [--model FILE] [--threads N] [--json]

Runs Silero VAD v5 (bundled in models/) over a recording, one 32 ms frame at a time, and prints
the speech segments it finds and how fast it ran.

Options:
  --wav FILE     a PCM WAV file (default: the bundled assets/speech.wav); other rates than
                 16 kHz are resampled, channels are mixed to mono
  --model FILE   a Silero VAD v5 ONNX file (default: models/silero_vad_v5.onnx)
  --threads N    intra-op threads (default 1: one frame is too small to share out)
  --json         print JSON instead of text`;

const spec: Spec = {
  wav: { type: 'string' },
  model: { type: 'string' },
  threads: { type: 'string' },
  json: { type: 'boolean' },
};

/** A path relative to the working directory when that is shorter, for display. */
function display(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.length < path.length && !rel.startsWith('..') ? rel : path;
}

export async function main(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv, spec);
  expectPositionals(args, [], 'demo');
  const root = packageRoot();
  const wavPath = str(args, 'wav') ?? join(root, 'assets', 'speech.wav');
  const modelPath = str(args, 'model') ?? join(root, 'models', 'silero_vad_v5.onnx');
  const threads = positiveInt(args, 'threads', 1);
  const json = flag(args, 'json');

  const audio = loadWav(wavPath);
  const seconds = audio.samples.length / audio.sampleRate;
  if (!json) {
    process.stdout.write(
      `Finding speech in ${display(wavPath)} (${seconds.toFixed(2)} s, ${audio.sampleRate / 1000} kHz) ` +
        `with Silero VAD v5 on tract, one ${(1000 * VAD_WINDOW) / VAD_SAMPLE_RATE} ms frame at a time…\n`,
    );
  }

  const t0 = process.hrtime.bigint();
  const model = await loadSileroVad(modelPath, { threads });
  const t1 = process.hrtime.bigint();
  const probs = await speechProbabilities(model, audio.samples, audio.sampleRate);
  const t2 = process.hrtime.bigint();
  await model.dispose();

  const audioSamples16k = Math.floor((audio.samples.length * VAD_SAMPLE_RATE) / audio.sampleRate);
  const segments = speechSegments(probs, { audioSamples: audioSamples16k });
  const loadMs = Number(t1 - t0) / 1e6;
  const vadS = Number(t2 - t1) / 1e9;
  const framesPerSecond = probs.length / vadS;
  const realtime = seconds / vadS;

  if (json) {
    const out = {
      wav: wavPath,
      model: modelPath,
      audioSeconds: seconds,
      sampleRate: audio.sampleRate,
      frames: probs.length,
      segments,
      loadMs,
      vadMs: vadS * 1000,
      framesPerSecond,
      realtime,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return;
  }
  const lines = ['', `Speech segments (${segments.length}):`];
  for (const s of segments) {
    lines.push(`  ${s.start.toFixed(2)}s – ${s.end.toFixed(2)}s  (${(s.end - s.start).toFixed(2)}s)`);
  }
  if (segments.length === 0) lines.push('  (none)');
  lines.push(
    '',
    `${probs.length} frames, ${seconds.toFixed(2)} s of audio, in ${(vadS * 1000).toFixed(0)} ms ` +
      `(model loaded in ${loadMs.toFixed(0)} ms): ${Math.round(framesPerSecond)} frames/s, ` +
      `${realtime.toFixed(0)}x realtime`,
  );
  process.stdout.write(lines.join('\n') + '\n');
}
