#!/usr/bin/env node
/** The `oxinfer` command: dispatches to one module per subcommand. */
import { OxinferError } from '../errors';
import { UsageError } from './args';
import * as demo from './demo';
import * as embed from './embed';
import * as inspect from './inspect';
import { packageVersion } from './package-root';
import * as run from './run';

interface Command {
  summary: string;
  usage: string;
  main(argv: readonly string[]): Promise<void>;
}

const COMMANDS: Record<string, Command> = { demo, embed, inspect, run };

function usage(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length));
  return [
    'Usage: oxinfer <command> [options]',
    '',
    'ML inference for Node.js on Rust engines: ONNX on tract, sentence embeddings on candle.',
    '',
    'Commands:',
    ...names.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n]!.summary}`),
    `  ${'help'.padEnd(width)}  show help for a command: oxinfer help run`,
    '',
    'Options:',
    '  -h, --help     show this help (or a command\'s, after the command)',
    '  -v, --version  print the version',
  ].join('\n');
}

/** Runs the CLI and returns the exit status. */
export async function cli(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(usage() + '\n');
    return 2;
  }
  if (first === '-h' || first === '--help') {
    process.stdout.write(usage() + '\n');
    return 0;
  }
  if (first === '-v' || first === '--version') {
    process.stdout.write(packageVersion() + '\n');
    return 0;
  }
  if (first === 'help') {
    const topic = rest[0];
    if (topic === undefined) {
      process.stdout.write(usage() + '\n');
      return 0;
    }
    const command = COMMANDS[topic];
    if (!command) return usageError(`unknown command '${topic}'`);
    process.stdout.write(command.usage + '\n');
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  if (!command) return usageError(first.startsWith('-') ? `unknown option '${first}'` : `unknown command '${first}'`);
  if (rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(command.usage + '\n');
    return 0;
  }
  try {
    await command.main(rest);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) return usageError(e.message, command.usage);
    process.stderr.write(`oxinfer: ${describe(e)}\n`);
    return 1;
  }
}

function usageError(message: string, text = usage()): number {
  process.stderr.write(`oxinfer: ${message}\n\n${text}\n`);
  return 2;
}

function describe(e: unknown): string {
  const message = (e instanceof Error ? e.message : String(e)).replace(/^oxinfer: /, '');
  return e instanceof OxinferError ? `${message} (${e.code})` : message;
}

if (require.main === module) {
  cli(process.argv.slice(2)).then(
    (status) => {
      process.exitCode = status;
    },
    (e: unknown) => {
      process.stderr.write(`oxinfer: ${describe(e)}\n`);
      process.exitCode = 1;
    },
  );
}
