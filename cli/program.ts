/**
 * The `livemig` program: one subcommand per file in commands/, --version, and one error path
 * (usage.ts): failures print `livemig: ERR_CODE: message` on stderr and exit 2 for bad input,
 * 1 for a failed operation, so scripts can tell the two apart.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { commandsFor } from './commands/index.ts';
import { EXIT, reportError, STDIO, useOneErrorPath, type CliOutput } from './usage.ts';

const PACKAGE = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/**
 * The program; with `argv` (node, script, args…), only the command it names is loaded (see
 * commands/index.ts), else every command.
 */
export async function buildProgram(output: CliOutput = STDIO, argv?: readonly string[]): Promise<Command> {
  const program = new Command('livemig')
    .description(
      'Live migration of a running toy VM between two agents over TCP, with honest measurements.\n' +
        'Run `livemig <command> --help` for the options of each command.',
    )
    .version(PACKAGE.version, '-V, --version', 'print the version')
    // Errors are printed by reportError, once, in livemig's format.
    .configureOutput({
      writeOut: (text) => output.out(text),
      writeErr: (text) => output.err(text),
      outputError: () => {},
    })
    .addHelpText(
      'after',
      '\nErrors: one line `livemig: ERR_CODE: message` on stderr (codes: docs/errors.md).\n' +
        'Exit status: 0 done, 1 the operation failed, 2 bad input (a flag, value, unit, mode or address).',
    );
  // Loaded together, registered in --help's order.
  const registers = await Promise.all(commandsFor(argv?.slice(2)).map((m) => m.load()));
  for (const register of registers) register(program);
  useOneErrorPath(program);
  return program;
}

/** Run `program` on `argv` (node, script, args…); the exit status. */
export async function runCli(program: Command, argv: readonly string[], output: CliOutput = STDIO): Promise<number> {
  try {
    await program.parseAsync([...argv]);
    return process.exitCode === undefined ? EXIT.ok : Number(process.exitCode);
  } catch (error) {
    return reportError(error, output);
  }
}
