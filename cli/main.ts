/**
 * `livemig` — one CLI, one subcommand per file in cli/commands/. Every command reports
 * failures as `livemig: ERR_CODE: message` on stderr and exits 2 for bad input, 1 for a
 * failed operation, so scripts can tell the two apart.
 */
import { Command, CommanderError } from 'commander';
import { isMigrationError, type ErrorCode } from '@livemig/shared';
import { COMMANDS } from './commands/index.ts';

const INPUT_ERRORS: ReadonlySet<ErrorCode> = new Set([
  'ERR_INVALID_ARGUMENT',
  'ERR_INVALID_SIZE',
  'ERR_INVALID_DURATION',
  'ERR_INVALID_RATE',
  'ERR_INVALID_WORKLOAD',
  'ERR_INVALID_INIT',
  'ERR_INSECURE',
]);

export function buildProgram(): Command {
  const program = new Command('livemig')
    .description(
      'Live migration of a running toy VM between two agents over TCP, with honest measurements.\n' +
        'Run `livemig <command> --help` for the options of each command.',
    )
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of COMMANDS) register(program);
  return program;
}

async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv as string[]);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (isMigrationError(error)) {
      process.stderr.write(`livemig: ${error.code}: ${error.message}\n`);
      return INPUT_ERRORS.has(error.code) ? 2 : 1;
    }
    process.stderr.write(
      `livemig: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return 1;
  }
}

// `livemig … | head` closes the pipe early: that ends the output, it is not an error to report.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode === undefined ? 0 : Number(process.exitCode));
  throw error;
});

process.exitCode = await main(process.argv);
