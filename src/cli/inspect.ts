/** `oxinfer inspect MODEL`: what a model takes and gives, and what it is made of. */
import { type InputFact, TractModel } from '../tract-model';
import type { TensorInfo } from '../tensor';
import { type Spec, UsageError, constants, expectPositionals, flag, keyValue, list, parseArgs, parseDims, positiveInt } from './args';

export const summary = 'show a model\'s inputs, outputs, ops and hash';

export const usage = `Usage: oxinfer inspect MODEL [--shape NAME=DIMS ...] [--const NAME=VALUE[:DTYPE] ...] [--threads N] [--json]

Loads MODEL (an ONNX file) and prints its inputs and outputs (name, dtype, shape; symbols such
as 'batch' are sizes fixed at run time), how many nodes of each op it has, its sha256 and the
threads it would run with.

Options:
  --shape NAME=1,N,128
                  set the shape of input NAME (sizes or symbols; repeatable), for models
                  whose file leaves sizes undeclared or to see the shapes that follow
  --const NAME=VALUE[:DTYPE]
                  fix scalar input NAME to VALUE at load time (DTYPE default: int64 for
                  integers, else float32), e.g. --const sr=16000 for Silero VAD
  --threads N     intra-op threads (default: the CPUs this process may use)
  --json          print JSON instead of text`;

const spec: Spec = {
  shape: { type: 'string', multiple: true },
  const: { type: 'string', multiple: true },
  threads: { type: 'string' },
  json: { type: 'boolean' },
};

function table(rows: string[][], indent = '  '): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => indent + r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ')).join('\n');
}

function tensorRows(list: readonly TensorInfo[]): string[][] {
  return list.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`]);
}

export async function main(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv, spec);
  const [path] = expectPositionals(args, ['model'], 'inspect') as [string];
  const threads = positiveInt(args, 'threads');
  const inputs: Record<string, InputFact> = {};
  for (const text of list(args, 'shape')) {
    const [name, dims] = keyValue('shape', text);
    if (inputs[name]) throw new UsageError(`--shape ${name} given twice`);
    inputs[name] = { shape: parseDims('shape', dims, true) };
  }
  const model = await TractModel.load(path, { inputs, constants: constants(args), ...(threads === undefined ? {} : { threads }) });
  const ops = model.ops;
  if (flag(args, 'json')) {
    const info = {
      model: path,
      sha256: model.sha256,
      threads: model.threads,
      inputs: model.inputs,
      outputs: model.outputs,
      ops,
    };
    process.stdout.write(JSON.stringify(info, null, 2) + '\n');
  } else {
    const nodes = ops.reduce((n, o) => n + o.count, 0);
    const lines = [
      path,
      table([
        ['sha256', model.sha256],
        ['threads', String(model.threads)],
      ]),
      '',
      `inputs (${model.inputs.length})`,
      table(tensorRows(model.inputs)),
      '',
      `outputs (${model.outputs.length})`,
      table(tensorRows(model.outputs)),
      '',
      `ops (${nodes} nodes, ${ops.length} kinds)`,
      table(ops.map((o) => [o.op, String(o.count)])),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  await model.dispose();
}
